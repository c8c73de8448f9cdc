"""Diffusion-StyleGAN2 discriminator in flax.linen (reference `training/networks.py`).

With `t_conditioning=False` it is stylegan2-ada's discriminator (the reference's with t_dim = 0):
the vanilla-GAN baselines use it. The conv trunk never sees t. The timestep is turned into features (`t_embedding`), concatenated
after the label c, and passed through a projection mapping network (embed FC, 2nd-moment
normalisation, `mapping_layers` FC layers with lr multiplier 0.01); the epilogue output is
projected onto that vector. One call has the semantics of one reference GPU: the minibatch-std
group is min(mbstd_group_size, N) over exactly the batch passed in.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.models import layers
from dgan_jax.models import upfirdn2d as fir
from dgan_jax.models.generator import (MappingNetwork, channels_per_resolution,
                                       check_architecture, check_resolution,
                                       low_precision_resolution)
from dgan_jax.models.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer

T_EMBEDDINGS = ('raw', 'scaled', 'sinusoidal')


def timestep_features(t, kind: str = 'raw', t_max: float = 1000.0, dim: int = 128):
  """Features of the diffusion timestep t [N] (or [N, 1]) fed to D's mapping network.

  raw: the integer t as float, [N, 1] (the reference; not normalised).
  scaled: t / t_max, [N, 1].
  sinusoidal: transformer-style [sin(t f_k), cos(t f_k)], f_k = 10000^(-k / (dim/2)), [N, dim].
  """
  t = jnp.asarray(t).astype(jnp.float32).reshape(-1, 1)
  if kind == 'raw':
    return t
  if kind == 'scaled':
    return t / float(t_max)
  if kind == 'sinusoidal':
    half = dim // 2
    freqs = jnp.exp(-np.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = t * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)
  raise ValueError(f'Unknown t_embedding {kind!r}; use one of {T_EMBEDDINGS}.')


class DiscriminatorBlock(nn.Module):
  """One resolution of D: [fromrgb], conv0, conv1 (down 2), [resnet skip]."""
  in_channels: int            # 0 = first block (reads the image).
  tmp_channels: int
  out_channels: int
  resolution: int
  img_channels: int
  architecture: str = 'resnet'
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32

  def __post_init__(self):
    check_architecture(self.architecture)
    if self.in_channels not in (0, self.tmp_channels):
      raise ValueError(f'DiscriminatorBlock: in_channels must be 0 or tmp_channels '
                       f'({self.tmp_channels}), got {self.in_channels}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, img):
    if x is not None:
      layers.check_channels(x, self.in_channels, self.name)
      x = x.astype(self.dtype)
    kw = dict(activation='lrelu', conv_clamp=self.conv_clamp)
    if self.in_channels == 0 or self.architecture == 'skip':
      # The image path and fromrgb stay float32 in every block: bfloat16 rounding of the diffused
      # image is larger than the diffusion noise at small t (docs/models.md, reduced precision).
      img = img.astype(jnp.float32)
      y = Conv2dLayer(self.img_channels, self.tmp_channels, 1, name='fromrgb', **kw)(img)
      y = y.astype(self.dtype)
      x = x + y if x is not None else y
      img = fir.downsample2d(img, layers.RESAMPLE_FILTER) if self.architecture == 'skip' else None
    conv0 = Conv2dLayer(self.tmp_channels, self.tmp_channels, 3, name='conv0', **kw)
    conv1 = Conv2dLayer(self.tmp_channels, self.out_channels, 3, down=2, name='conv1', **kw)
    if self.architecture == 'resnet':
      skip = Conv2dLayer(self.tmp_channels, self.out_channels, 1, down=2, use_bias=False,
                         name='skip')
      y = skip(x, gain=np.sqrt(0.5))
      x = conv1(conv0(x), gain=np.sqrt(0.5))
      x = y + x
    else:
      x = conv1(conv0(x))
    return x, img


class DiscriminatorEpilogue(nn.Module):
  """4x4 head (float32): [fromrgb], minibatch std, conv, fc, out, projection onto cmap."""
  in_channels: int
  cmap_dim: int
  resolution: int
  img_channels: int
  architecture: str = 'resnet'
  mbstd_group_size: Optional[int] = 4
  mbstd_num_channels: int = 1
  conv_clamp: Optional[float] = None

  @nn.compact
  def __call__(self, x, img, cmap):
    layers.check_channels(x, self.in_channels, self.name)
    x = x.astype(jnp.float32)
    if self.architecture == 'skip':
      x = x + Conv2dLayer(self.img_channels, self.in_channels, 1, activation='lrelu',
                          name='fromrgb')(img.astype(jnp.float32))
    if self.mbstd_num_channels > 0:
      x = MinibatchStdLayer(self.mbstd_group_size, self.mbstd_num_channels)(x)
    x = Conv2dLayer(self.in_channels + self.mbstd_num_channels, self.in_channels, 3,
                    activation='lrelu', conv_clamp=self.conv_clamp, name='conv')(x)
    # Flatten in C, H, W order like the reference, so the fc weight exports by a transpose.
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
    x = FullyConnectedLayer(x.shape[1], self.in_channels, activation='lrelu', name='fc')(x)
    x = FullyConnectedLayer(self.in_channels, self.cmap_dim or 1, name='out')(x)
    if self.cmap_dim > 0:
      x = (x * cmap).sum(axis=1, keepdims=True) * (1.0 / np.sqrt(self.cmap_dim))
    return x


class Discriminator(nn.Module):
  """D(img [N, H, W, C], c [N, c_dim], t [N]) -> logits [N, 1] float32."""
  c_dim: int = 0
  img_resolution: int = 32
  img_channels: int = 3
  architecture: str = 'resnet'
  channel_base: int = 32768
  channel_max: int = 512
  num_fp16_res: int = 0
  conv_clamp: Optional[float] = None
  cmap_dim: Optional[int] = None          # None/0 = channels at 4x4 (reference default).
  mbstd_group_size: Optional[int] = 4
  mbstd_num_channels: int = 1
  mapping_layers: int = 8                 # The reference keeps MappingNetwork's default 8.
  mapping_lr_multiplier: float = 0.01
  t_conditioning: bool = True             # False: the vanilla stylegan2-ada D (no t input).
  t_embedding: str = 'raw'                # raw (reference) | scaled | sinusoidal.
  t_max: float = 1000.0                   # Divisor of the 'scaled' embedding.
  t_embed_dim: int = 128                  # Width of the 'sinusoidal' embedding.
  mixed_precision_dtype: Any = jnp.float32

  def __post_init__(self):
    check_resolution(self.img_resolution)
    if self.img_resolution < 8:
      raise ValueError(f'Discriminator needs img_resolution >= 8 (at least one block before the '
                       f'4x4 epilogue), got {self.img_resolution}.')
    check_architecture(self.architecture)
    if self.t_embedding not in T_EMBEDDINGS:
      raise ValueError(f'Unknown t_embedding {self.t_embedding!r}; use one of {T_EMBEDDINGS}.')
    if self.c_dim < 0:
      raise ValueError(f'c_dim must be >= 0 (0 = unconditional), got {self.c_dim}.')
    if self.img_channels < 1:
      raise ValueError(f'img_channels must be >= 1, got {self.img_channels}.')
    for res in self.block_resolutions + [4]:
      channels_per_resolution(res, self.channel_base, self.channel_max)
    if self.t_embedding == 'sinusoidal' and (self.t_embed_dim < 2 or self.t_embed_dim % 2):
      raise ValueError(f't_embed_dim must be a positive even number, got {self.t_embed_dim}.')
    super().__post_init__()

  @property
  def block_resolutions(self) -> list[int]:
    return [2 ** i for i in range(int(np.log2(self.img_resolution)), 2, -1)]

  @property
  def t_dim(self) -> int:
    if not self.t_conditioning:
      return 0
    return self.t_embed_dim if self.t_embedding == 'sinusoidal' else 1

  @nn.compact
  def __call__(self, img, c, t, return_feats: bool = False):
    """Logits [N, 1]; with `return_feats`, (logits, the 4x4 trunk features [N, 4, 4, C] that enter
    the epilogue), as InsGen's D (reference `return_feats`)."""
    res = self.img_resolution
    if img.ndim != 4 or img.shape[1:] != (res, res, self.img_channels):
      raise ValueError(f'D: img must be NHWC [N, {res}, {res}, {self.img_channels}], got '
                       f'{tuple(img.shape)}.')
    n = img.shape[0]
    if c is None or c.shape != (n, self.c_dim):
      raise ValueError(f'D: c must be [N, {self.c_dim}] (use shape [N, 0] when unconditional), '
                       f'got {None if c is None else c.shape}.')
    if t is None or np.shape(t) not in ((n,), (n, 1)):
      raise ValueError(f'D: t must be the integer timestep [N] = [{n}], got '
                       f'{None if t is None else np.shape(t)}.')
    channels = lambda r: channels_per_resolution(r, self.channel_base, self.channel_max)
    low_res = low_precision_resolution(res, self.num_fp16_res)
    x = None
    for r in self.block_resolutions:
      block = DiscriminatorBlock(
          channels(r) if r < res else 0, channels(r), channels(r // 2), resolution=r,
          img_channels=self.img_channels, architecture=self.architecture,
          conv_clamp=self.conv_clamp,
          dtype=self.mixed_precision_dtype if r >= low_res else jnp.float32, name=f'b{r}')
      x, img = block(x, img)

    # As the reference: the label and t features go through the projection mapping; with neither
    # (the vanilla unconditional D) there is no mapping and no projection (cmap_dim = 0).
    cmap_dim, cmap = 0, None
    if self.c_dim + self.t_dim > 0:
      cmap_dim = self.cmap_dim or channels(4)
      c_t = c.astype(jnp.float32)
      if self.t_dim:
        c_t = jnp.concatenate(
            [c_t, timestep_features(t, self.t_embedding, self.t_max, self.t_embed_dim)], axis=1)
      cmap = MappingNetwork(z_dim=0, c_dim=self.c_dim + self.t_dim, w_dim=cmap_dim, num_ws=None,
                            num_layers=self.mapping_layers,
                            lr_multiplier=self.mapping_lr_multiplier,
                            w_avg_beta=None, name='mapping')(None, c_t)
    out = DiscriminatorEpilogue(
        channels(4), cmap_dim, resolution=4, img_channels=self.img_channels,
        architecture=self.architecture, mbstd_group_size=self.mbstd_group_size,
        mbstd_num_channels=self.mbstd_num_channels, conv_clamp=self.conv_clamp, name='b4')(
            x, img, cmap)
    return (out, x) if return_feats else out


def apply_in_sub_batches(discriminator: Discriminator, variables, img, c, t, batch_gpu: int):
  """D logits [N, 1] computed as N / batch_gpu independent reference-GPU calls (vmapped).

  Minibatch-std groups then never mix samples of different sub-batches, so results do not depend
  on how many devices the global batch is sharded over. N must be a multiple of batch_gpu.
  """
  n = img.shape[0]
  if batch_gpu < 1 or n % batch_gpu:
    raise ValueError(f'batch {n} must be a positive multiple of batch_gpu={batch_gpu}; set '
                     f'config.train.batch_gpu to a divisor of the per-device batch.')
  split = lambda x: jnp.asarray(x).reshape((n // batch_gpu, batch_gpu) + jnp.shape(x)[1:])
  logits = jax.vmap(lambda i, cc, tt: discriminator.apply(variables, i, cc, tt))(
      split(img), split(c), split(t))
  return logits.reshape(n, 1)
