"""SNGAN's ResNet networks for 32x32 CIFAR-10 (Miyato et al. 2018), with and without a t-conditioned D.

As the authors' code (pfnet-research/sngan_projection: gen_models/resnet_32.py,
dis_models/snresnet_32.py and the resblocks beside them):

  G: z (128) -> dense 4*4*256 -> 3 x up-ResBlock(256) -> BN -> ReLU -> 3x3 conv -> 3 -> tanh.
     up-ResBlock: BN, ReLU, nearest 2x up, 3x3 conv, BN, ReLU, 3x3 conv; shortcut: 2x up, 1x1 conv.
  D: optimised block (3x3 conv, ReLU, 3x3 conv, 2x2 avg pool; shortcut: avg pool, 1x1 conv)
     -> down-ResBlock (ReLU, conv, ReLU, conv, avg pool; shortcut: 1x1 conv, avg pool)
     -> 2 x ResBlock (identity shortcut), all 128 channels, spectral norm on every conv
     -> ReLU -> sum over pixels -> SN dense (no bias) -> logit.

Initialisation: Glorot uniform with gain sqrt(2) for the residual convs, gain 1 for shortcuts,
the dense layers and G's last conv; zero biases. BatchNorm decay 0.9, epsilon 2e-5 (chainer's).

Collections: G's BatchNorm statistics and D's spectral-norm power-iteration vectors (`u`, `sigma`)
live in 'batch_stats'. `train=True` updates them (apply with mutable=['batch_stats']).

Spectral norm goes through the one function `_sn` below (for now flax.linen.SpectralNorm, one
power iteration per call); swapping it for dgan_jax/models/spectral_norm.py (torch's semantics)
is a change of that function only.

Timestep conditioning of D (`t_conditioning=True`, docs/families.md): the t-less trunk and
head, plus a projection term <e(t), h> on the pooled 128-d features h (Miyato & Koyama's
projection discriminator with t in place of the class), e(t) an SN-MLP of sinusoidal features.
"""
import flax.linen as nn
import jax.numpy as jnp

from dgan_jax.models.small_layers import (Conv2d, TimestepEmbedding, channels, check_square_images,
                                          check_unconditional)
from dgan_jax.models.torch_layers import avg_pool, upsample_nearest2x

BN = dict(momentum=0.9, epsilon=2e-5)
INIT_RES = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')   # Glorot, gain sqrt(2).
INIT_SC = nn.initializers.xavier_uniform()                               # Glorot, gain 1.


def _sn(layer: nn.Module, train: bool):
  """Spectrally normalised `layer` (a named, unbound module) as a callable x -> y; `train` runs
  and stores a power-iteration step. The single place that chooses the spectral-norm
  implementation: the layer's params stay at `<name>/kernel`, the power-iteration state goes to
  'batch_stats' under `<name>_sn`."""
  wrapped = nn.SpectralNorm(layer, name=f'{layer.name}_sn')
  return lambda x: wrapped(x, update_stats=train)


class GBlock(nn.Module):
  """Pre-activation up-sampling residual block of G (learned 1x1 shortcut)."""
  features: int

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda name: nn.BatchNorm(use_running_average=not train, name=name, **BN)  # noqa: E731
    h = upsample_nearest2x(nn.relu(bn('b1')(x)))
    h = Conv2d(self.features, 3, 1, 1, kernel_init=INIT_RES, name='c1')(h)
    h = Conv2d(self.features, 3, 1, 1, kernel_init=INIT_RES, name='c2')(nn.relu(bn('b2')(h)))
    return h + Conv2d(self.features, 1, kernel_init=INIT_SC, name='c_sc')(upsample_nearest2x(x))


class SNGANGenerator(nn.Module):
  """G(z [N, z_dim], c=None, train) -> images [N, 32, 32, img_channels] in [-1, 1]."""
  z_dim: int = 128
  width: float = 1.0         # Channel multiplier (1 = 256 channels).
  img_channels: int = 3
  bottom: int = 4

  @nn.compact
  def __call__(self, z, c=None, train: bool = True):
    check_unconditional(c, 'SNGANGenerator')
    if z.ndim != 2 or z.shape[1] != self.z_dim:
      raise ValueError(f'SNGANGenerator: expected z [N, {self.z_dim}], got {z.shape}')
    ch = channels(256, self.width)
    x = nn.Dense(self.bottom * self.bottom * ch, kernel_init=INIT_SC, name='l1')(z)
    x = x.reshape(z.shape[0], self.bottom, self.bottom, ch)
    for i in (2, 3, 4):
      x = GBlock(ch, name=f'block{i}')(x, train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, name='b5', **BN)(x))
    return jnp.tanh(Conv2d(self.img_channels, 3, 1, 1, kernel_init=INIT_SC, name='c5')(x))


class DBlock(nn.Module):
  """Residual block of D with spectral norm: pre-activation (or `optimized`, the first block)."""
  features: int
  downsample: bool = True
  optimized: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda k, init, name: _sn(  # noqa: E731
        Conv2d(self.features, k, 1, k // 2, kernel_init=init, name=name), train)
    h = x if self.optimized else nn.relu(x)
    h = conv(3, INIT_RES, 'c1')(h)
    h = conv(3, INIT_RES, 'c2')(nn.relu(h))
    if self.downsample:
      h = avg_pool(h, 2)
    if self.optimized:
      return h + conv(1, INIT_SC, 'c_sc')(avg_pool(x, 2))
    if self.downsample or x.shape[-1] != self.features:
      sc = conv(1, INIT_SC, 'c_sc')(x)
      return h + (avg_pool(sc, 2) if self.downsample else sc)
    return h + x


class SNGANDiscriminator(nn.Module):
  """D(img [N, 32, 32, C], c=None, t=None [N], train) -> logits [N, 1] float32.

  t_conditioning=False ignores t (the SNGAN baseline); True adds the projection term (t=None is
  read as t=0, a clean sample).
  """
  width: float = 1.0         # Channel multiplier (1 = 128 channels).
  t_conditioning: bool = False
  t_embedding: str = 'sinusoidal'
  t_embed_dim: int = 128
  t_max: float = 1000.0

  @nn.compact
  def __call__(self, img, c=None, t=None, train: bool = True):
    check_unconditional(c, 'SNGANDiscriminator')
    check_square_images(img, 4, 'SNGANDiscriminator')
    ch = channels(128, self.width)
    x = img.astype(jnp.float32)
    x = DBlock(ch, optimized=True, name='block1')(x, train)
    x = DBlock(ch, downsample=True, name='block2')(x, train)
    x = DBlock(ch, downsample=False, name='block3')(x, train)
    x = DBlock(ch, downsample=False, name='block4')(x, train)
    h = nn.relu(x).sum(axis=(1, 2))
    logit = _sn(nn.Dense(1, use_bias=False, kernel_init=INIT_SC, name='l5'), train)(h)
    if self.t_conditioning:
      t = jnp.zeros((img.shape[0],), jnp.int32) if t is None else t
      dense = lambda features, name: _sn(nn.Dense(features, kernel_init=INIT_SC, name=name), train)  # noqa: E731
      e = TimestepEmbedding(ch, dense, self.t_embedding, self.t_max, self.t_embed_dim,
                            name='t_embed')(t)
      logit = logit + (e * h).sum(axis=1, keepdims=True)
    return logit

