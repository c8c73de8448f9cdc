"""FastGAN generator of Projected GANs (reference `pg_modules/networks_fastgan.py`, `blocks.py`).

G(z, c) -> NHWC images; `--cfg fastgan` (lite=False) and `fastgan_lite` (lite=True), with the
reference's defaults ngf=128, z_dim=256. Widths nfc[r] = int(m[r] * ngf) with
m = {2: 16, 4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}.

* z is normalised to unit second moment, then InitLayer: spectral-norm ConvTranspose 4x4 (from
  1x1) to 2 nfc[4] channels -> BatchNorm -> GLU (halves the channels).
* feat_8 ... feat_256 (and feat_512, feat_1024 above 256): UpBlocks. Big (fastgan): nearest x2,
  spectral-norm 3x3 conv (no bias) to 2 out -> NoiseInjection -> BatchNorm -> GLU, twice.
  Small (fastgan_lite): nearest x2, conv, BatchNorm, GLU once.
* SE blocks gate the 64, 128, 256 (and 512) features with the 4, 8, 16 (and 32) ones: adaptive
  average pool to 4x4, spectral-norm 4x4 conv -> Swish -> 1x1 conv -> sigmoid, times the big map.
* to_big: spectral-norm 3x3 conv with bias to img_channels. No tanh: the reference returns the
  conv output as is.
* Conditional (`cond`): class embedding nn.Embedding(1000, z_dim) of argmax(c) (1000 rows: the
  reference's default num_classes, whatever c_dim), UpBlocks with CCBN (BatchNorm without affine,
  gain 1 + SNLinear(emb) and bias SNLinear(emb)); one NoiseInjection per big block, used twice.

As in the reference, all blocks up to feat_256 and se_256 exist for every resolution (32 uses
only feat_8..feat_32): `init` creates the unused ones too, so parameter counts and state dicts
match. Valid resolutions: 32, 64, 128, 256, 512, 1024 (512 and above unconditional only: the
reference's conditional generator cannot build them).

State: 'params', 'batch_stats' (BatchNorm running statistics), 'spectral' (u, v). `train=True`
is the reference's G in training mode (G always is; G_ema never): batch statistics, running
averages and power iterations updated; apply with mutable=['batch_stats', 'spectral'].
`train=False` (G_ema, generation): running statistics and stored u, v. NoiseInjection draws
N(0, 1) noise from the 'noise' RNG stream in both modes, as the reference (it ignores noise_mode).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgan_jax.models import layers as sg2_layers
from dgan_jax.models import torch_layers
from dgan_jax.models.spectral_norm import SNConv2d, SNConvTranspose2d, SNDense

WIDTH_MULTIPLIERS = {2: 16, 4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25,
                     1024: 0.125}
RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
NUM_CLASSES = 1000


def widths(ngf: int) -> dict[int, int]:
  return {k: int(v * ngf) for k, v in WIDTH_MULTIPLIERS.items()}


def check_settings(img_resolution: int, ngf: int, cond: bool) -> None:
  if img_resolution not in RESOLUTIONS:
    raise ValueError(f'FastGAN supports img_resolution in {RESOLUTIONS}, got {img_resolution}.')
  if cond and img_resolution > 256:
    raise ValueError('The conditional FastGAN supports resolutions up to 256 (the reference '
                     'builds its 512/1024 blocks without the label input and fails).')
  nfc = widths(ngf)
  if min(nfc[r] for r in nfc if r <= max(img_resolution, 256)) < 1:
    raise ValueError(f'ngf={ngf} gives 0 channels at some resolution; use ngf >= 8.')


class NoiseInjection(nn.Module):
  """feat + weight * N(0, 1) noise [N, H, W, 1] from the 'noise' RNG; weight starts at 0."""

  @nn.compact
  def __call__(self, x):
    weight = self.param('weight', nn.initializers.zeros, (1,))
    noise = jax.random.normal(self.make_rng('noise'), x.shape[:3] + (1,), jnp.float32)
    self.sow('intermediates', 'noise', noise)
    return x + weight.astype(x.dtype) * noise.astype(x.dtype)


class ConditionalBatchNorm(nn.Module):
  """The reference's CCBN: affine-free BatchNorm, then * (1 + gain(y)) + bias(y), SN linears."""
  channels: int
  input_size: int

  @nn.compact
  def __call__(self, x, y, train: bool):
    gain = 1 + SNDense(self.input_size, self.channels, name='gain')(y, update=train)
    bias = SNDense(self.input_size, self.channels, name='bias')(y, update=train)
    x = torch_layers.BatchNorm2d(self.channels, affine=False, count_batches=False, name='norm')(
        x, train)
    return x * gain[:, None, None, :] + bias[:, None, None, :]


class UpBlock(nn.Module):
  """UpBlockBig / UpBlockSmall and their conditional forms (CCBN on the class embedding)."""
  in_channels: int
  out_channels: int
  lite: bool
  cond_dim: int = 0      # > 0: conditional (the embedding width, = z_dim)

  @nn.compact
  def __call__(self, x, emb, train: bool):
    cin, cout = self.in_channels, self.out_channels
    x = torch_layers.upsample_nearest2x(x)
    cond = self.cond_dim > 0
    noise = NoiseInjection(name='noise') if cond and not self.lite else None

    def norm(x, suffix: str):
      if cond:
        return ConditionalBatchNorm(2 * cout, self.cond_dim, name=f'bn{suffix}')(x, emb, train)
      return torch_layers.BatchNorm2d(2 * cout, name=f'norm{suffix}')(x, train)

    if self.lite:
      x = SNConv2d(cin, 2 * cout, 3, padding=1, use_bias=False, name='conv')(x, update=train)
      return torch_layers.glu(norm(x, ''))
    for i, c_in in ((1, cin), (2, cout)):
      x = SNConv2d(c_in, 2 * cout, 3, padding=1, use_bias=False, name=f'conv{i}')(x, update=train)
      x = noise(x) if cond else NoiseInjection(name=f'noise{i}')(x)
      x = torch_layers.glu(norm(x, str(i)))
    return x


class SEBlock(nn.Module):
  """big * sigmoid(conv1x1(swish(conv4x4(adaptive_avg_pool(small, 4)))))."""
  small_channels: int
  big_channels: int

  @nn.compact
  def __call__(self, small, big, train: bool):
    s = torch_layers.adaptive_avg_pool(small, 4)
    s = SNConv2d(self.small_channels, self.big_channels, 4, use_bias=False, name='conv1')(
        s, update=train)
    s = s * jax.nn.sigmoid(s)
    s = SNConv2d(self.big_channels, self.big_channels, 1, use_bias=False, name='conv2')(
        s, update=train)
    return big * jax.nn.sigmoid(s)


class InitLayer(nn.Module):
  """z [N, z_dim] -> SN ConvTranspose 4x4 -> BatchNorm -> GLU: [N, 4, 4, channels]."""
  z_dim: int
  channels: int

  @nn.compact
  def __call__(self, z, train: bool):
    x = z[:, None, None, :]
    x = SNConvTranspose2d(self.z_dim, 2 * self.channels, 4, use_bias=False, name='conv')(
        x, update=train)
    x = torch_layers.BatchNorm2d(2 * self.channels, name='norm')(x, train)
    return torch_layers.glu(x)


class FastGANGenerator(nn.Module):
  """G(z, c, train=False) -> images [N, H, W, img_channels] float32 (reference Generator)."""
  z_dim: int = 256
  c_dim: int = 0
  img_resolution: int = 256
  img_channels: int = 3
  ngf: int = 128
  lite: bool = False
  cond: bool = False
  num_classes: int = NUM_CLASSES

  def __post_init__(self):
    check_settings(self.img_resolution, self.ngf, self.cond)
    if self.cond and self.c_dim < 1:
      raise ValueError('A conditional FastGAN needs labels (c_dim >= 1); set '
                       'config.model.projected.cond=False or use a labelled dataset.')
    super().__post_init__()

  @property
  def up_resolutions(self) -> list[int]:
    """Resolutions of the UpBlocks the reference builds (8..256, then 512 and 1024 if needed)."""
    return [r for r in (8, 16, 32, 64, 128, 256, 512, 1024)
            if r <= 256 or r <= self.img_resolution]

  @property
  def se_pairs(self) -> list[tuple[int, int]]:
    """(small, big) resolutions of the SE blocks the reference builds."""
    pairs = [(4, 64), (8, 128), (16, 256)]
    return pairs + ([(32, 512)] if self.img_resolution > 256 else [])

  @nn.compact
  def __call__(self, z, c=None, *, train: bool = False):
    if z.ndim != 2 or z.shape[1] != self.z_dim:
      raise ValueError(f'FastGANGenerator: z must be [N, {self.z_dim}], got {z.shape}.')
    nfc = widths(self.ngf)
    emb = None
    if self.cond:
      if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
        raise ValueError(f'FastGANGenerator: c must be [N, {self.c_dim}] one-hot labels, got '
                         f'{None if c is None else c.shape}.')
      emb = torch_layers.Embedding(self.num_classes, self.z_dim, name='embed')(jnp.argmax(c, 1))
    cond_dim = self.z_dim if self.cond else 0
    up = {r: UpBlock(nfc[r // 2], nfc[r], self.lite, cond_dim, name=f'feat_{r}')
          for r in self.up_resolutions}
    se = {big: SEBlock(nfc[small], nfc[big], name=f'se_{big}') for small, big in self.se_pairs}
    to_big = SNConv2d(nfc[self.img_resolution], self.img_channels, 3, padding=1, name='to_big')

    x = sg2_layers.normalize_2nd_moment(z.astype(jnp.float32))
    feats = {4: InitLayer(self.z_dim, nfc[2], name='init')(x, train)}
    for r in (8, 16, 32):
      feats[r] = up[r](feats[r // 2], emb, train)
    res = self.img_resolution
    if res == 32:
      self._init_unused(up, se, feats, emb, train, upto=32)
      return to_big(feats[32], update=train)
    feats[64] = se[64](feats[4], up[64](feats[32], emb, train), train)
    if res == 64:
      self._init_unused(up, se, feats, emb, train, upto=64)
      return to_big(feats[64], update=train)
    last = se[128](feats[8], up[128](feats[64], emb, train), train)
    if res >= 256:
      last = se[256](feats[16], up[256](last, emb, train), train)
    else:
      feats[128] = last
      self._init_unused(up, se, feats, emb, train, upto=128)
    if res >= 512:
      last = se[512](feats[32], up[512](last, emb, train), train)
    if res >= 1024:
      last = up[1024](last, emb, train)
    return to_big(last, update=train)

  def _init_unused(self, up, se, feats, emb, train, upto: int):
    """At `init`, run the blocks above `upto` that the reference builds but this resolution
    skips, so their variables exist (same parameter count and state dict as the reference)."""
    if not self.is_initializing():
      return
    x = feats[upto]
    for r in (64, 128, 256):
      if r > upto:
        x = up[r](x, emb, train)
        x = se[r](feats[{64: 4, 128: 8, 256: 16}[r]], x, train)
