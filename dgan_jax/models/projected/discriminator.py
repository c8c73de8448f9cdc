"""The projected discriminator (reference `pg_modules/discriminator.py` and `blocks.py`).

ProjectedDiscriminator(images, c, t_epl, T, key) = concat over the four feature maps of a
mini-discriminator's patch logits:

1. bilinear resize to 224x224 (align_corners=False) when `interp224` (the reference: data
   resolution < 224);
2. FeatureNetwork (projector.py): frozen EfficientNet-lite0, feature-level diffusion, frozen
   random mixers;
3. per map i a SingleDisc: DownBlocks from the map's nominal resolution down to 8 (channel widths
   from the reference's table {..., 64: 64, 32: 128, 16: 256, 8: 512}, the first input being the
   map's channels), then a 4x4 'valid' conv to one channel (or, conditional, to cmap_dim channels
   projected on an embedding of the class: SingleDiscCond), flattened: [N, patches].

DownBlock = spectral-norm conv 4x4/2 pad 1 with bias -> BatchNorm -> LeakyReLU(0.2); the
separable variant (the reference's choice for --cfg stylegan2) = spectral-norm depthwise 3x3 and
pointwise 1x1 convs without bias -> BatchNorm -> LeakyReLU -> 2x2 average pool; `patch` adds a
spectral-norm 1x1 conv -> BatchNorm -> LeakyReLU to each and starts every disc at 16.

DiffAugment (color, translation, cutout) is not part of this module: the family applies it to
the images before calling D, as the reference's ProjectedDiscriminator.forward does first.

State: 'params' (the mini-discriminators: what the D optimizer trains), 'batch_stats' (their
BatchNorm running statistics), 'spectral' (their spectral-norm u, v), 'frozen' (backbone and
mixers). `train=True` is the reference's D in training mode (it always is during training):
BatchNorm normalises with the batch statistics of the call and updates the running ones, every
spectral-norm layer does one power iteration; apply with mutable=['batch_stats', 'spectral'].
The backbone is always in inference mode, as the reference's `train()` override keeps it.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.models import torch_layers
from dgan_jax.models.projected import projector
from dgan_jax.models.spectral_norm import SNConv2d

# The reference's SingleDisc channel table (resolution -> channels).
CHANNEL_TABLE = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
END_SIZE = 8
BACKBONE_SIZE = 224


def mini_disc_layout(in_channels: int, start_size: int) -> tuple[list[tuple[int, int]], int]:
  """([(in, out)] of the DownBlocks, channels into the final conv) of one SingleDisc.

  As the reference: a start size outside the table snaps to the nearest entry; the first block's
  input width is the feature map's channels.
  """
  sizes = np.array(sorted(CHANNEL_TABLE))
  if start_size not in CHANNEL_TABLE:
    start_size = int(sizes[np.argmin(np.abs(sizes - start_size))])
  widths = dict(CHANNEL_TABLE)
  widths[start_size] = in_channels
  blocks = []
  size = start_size
  while size > END_SIZE:
    blocks.append((widths[size], widths[size // 2]))
    size //= 2
  return blocks, widths[END_SIZE]


class DownBlock(nn.Module):
  """Spectral-norm downsampling block (reference DownBlock / DownBlockPatch)."""
  in_channels: int
  out_channels: int
  separable: bool = False
  patch: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    cin, cout = self.in_channels, self.out_channels
    if self.patch:
      x = DownBlock(cin, cout, self.separable, name='down')(x, train)
      x = SNConv2d(cout, cout, 1, use_bias=False, name='conv')(x, update=train)
      x = torch_layers.BatchNorm2d(cout, name='norm')(x, train)
      return torch_layers.leaky_relu(x)
    if self.separable:
      x = SNConv2d(cin, cin, 3, padding=1, groups=cin, use_bias=False, name='depthwise')(
          x, update=train)
      x = SNConv2d(cin, cout, 1, use_bias=False, name='pointwise')(x, update=train)
    else:
      x = SNConv2d(cin, cout, 4, stride=2, padding=1, name='conv')(x, update=train)
    x = torch_layers.BatchNorm2d(cout, name='norm')(x, train)
    x = torch_layers.leaky_relu(x)
    if self.separable:
      x = torch_layers.avg_pool(x, 2)
    return x


class MiniDiscriminator(nn.Module):
  """SingleDisc (or SingleDiscCond with `conditional`): one feature map -> [N, patches] logits."""
  in_channels: int
  start_size: int
  separable: bool = False
  patch: bool = False
  conditional: bool = False
  num_classes: int = 1000     # SingleDiscCond's c_dim default (the reference never passes it).
  cmap_dim: int = 64
  embedding_dim: int = 128

  @nn.compact
  def __call__(self, x, c, train: bool):
    blocks, end_channels = mini_disc_layout(self.in_channels, self.start_size)
    for j, (cin, cout) in enumerate(blocks):
      x = DownBlock(cin, cout, self.separable, self.patch, name=f'down{j}')(x, train)
    if not self.conditional:
      out = SNConv2d(end_channels, 1, 4, use_bias=False, name='out')(x, update=train)
      return out.reshape(out.shape[0], -1)
    out = SNConv2d(end_channels, self.cmap_dim, 4, use_bias=False, name='cls')(x, update=train)
    emb = torch_layers.Embedding(self.num_classes, self.embedding_dim, name='embed')(
        jnp.argmax(c, axis=1))
    cmap = torch_layers.leaky_relu(
        torch_layers.Linear(self.embedding_dim, self.cmap_dim, name='embed_proj')(emb))
    out = (out * cmap[:, None, None, :]).sum(axis=-1) * (1 / np.sqrt(self.cmap_dim))
    return out.reshape(out.shape[0], -1)


class MultiScaleD(nn.Module):
  """The mini-discriminators on the first `num_discs` maps; logits concatenated in map order."""
  channels: tuple
  resolutions: tuple
  num_discs: int = 4
  separable: bool = False
  patch: bool = False
  conditional: bool = False

  @nn.compact
  def __call__(self, feats, c, train: bool):
    logits = []
    for i in range(self.num_discs):
      start = self.resolutions[i] if not self.patch else 16
      disc = MiniDiscriminator(self.channels[i], start, self.separable, self.patch,
                               self.conditional, name=f'disc{i}')
      logits.append(disc(feats[i], c, train))
    return jnp.concatenate(logits, axis=1)


class ProjectedDiscriminator(nn.Module):
  """D(images, c, t_epl, T, key, train=True) -> patch logits [N, L] float32.

  images NHWC in [-1, 1] (already DiffAugment-ed); c [N, c_dim] one-hot (used when conditional);
  t_epl int [epl_size]: the exploration list of the caller's pool (sub-batch), T the current
  number of steps (the controller state), key: a PRNG key for this call's diffusion draws
  (t_epl=None: no diffusion, e.g. at init).

  Attributes follow the reference's D kwargs: `interp224`, and the backbone_kwargs proj_type,
  cout, expand, num_discs, separable, patch, cond (`conditional`), d_pos; `diffusion` is
  config.diffusion as a FrozenConfigDict (None: no diffusion). `c_dim` is the label width the
  caller passes (0 = unconditional).
  """
  c_dim: int = 0
  interp224: bool = True
  proj_type: int = 2
  cout: int = 64
  expand: bool = True
  num_discs: int = 4
  separable: bool = False
  patch: bool = False
  conditional: bool = False
  d_pos: str = 'first'
  diffusion: Optional[Any] = None

  def __post_init__(self):
    projector.check_settings(self.proj_type, self.d_pos)
    if self.num_discs not in (1, 2, 3, 4):
      raise ValueError(f'num_discs={self.num_discs} must be 1, 2, 3 or 4.')
    if self.conditional and self.c_dim < 1:
      raise ValueError('A conditional projected discriminator needs labels (c_dim >= 1); set '
                       'config.model.projected.cond=False or use a labelled dataset.')
    super().__post_init__()

  @property
  def channels(self) -> tuple:
    return projector.feature_channels(self.proj_type, self.cout, self.expand)

  @property
  def resolutions(self) -> tuple:
    return projector.feature_resolutions(self.proj_type)

  @nn.compact
  def __call__(self, images, c=None, t_epl: Optional[jax.Array] = None,
               T: Optional[jax.Array] = None, key: Optional[jax.Array] = None, *,
               train: bool = True):
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'ProjectedDiscriminator: expected NHWC RGB images, got {images.shape} '
                       '(the EfficientNet backbone needs 3 channels).')
    if self.conditional and (c is None or c.ndim != 2 or c.shape[1] != self.c_dim):
      raise ValueError(f'ProjectedDiscriminator: c must be [N, {self.c_dim}] one-hot labels, got '
                       f'{None if c is None else c.shape}.')
    x = images.astype(jnp.float32)
    if self.interp224:
      x = torch_layers.interpolate_bilinear(x, (BACKBONE_SIZE, BACKBONE_SIZE), align_corners=False)
    feats = projector.FeatureNetwork(self.proj_type, self.cout, self.expand, self.d_pos,
                                     self.diffusion, name='feature_network')(x, t_epl, T, key)
    return MultiScaleD(self.channels, self.resolutions, self.num_discs, self.separable, self.patch,
                       self.conditional, name='discriminator')(feats, c, train)
