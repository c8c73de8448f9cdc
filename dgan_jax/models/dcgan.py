"""DCGAN for 32x32 CIFAR-10 (Radford et al. 2016), with and without a t-conditioned D.

The variant: chainer-gan-lib's `DCGANGenerator` / `DCGANDiscriminator` (pfnet-research, the code of
the spectral-normalisation paper, Miyato et al. 2018, whose Table 3 "standard CNN" it is; the same
layout as the CIFAR-10 DCGAN of Mimicry and StudioGAN):

  G: z (128) -> dense 4*4*512 -> BN -> ReLU -> reshape 4x4x512
     -> 3 x [4x4 stride-2 transposed conv (256, 128, 64) -> BN -> ReLU]     (8, 16, 32 px)
     -> 3x3 conv -> 3 -> tanh
  D: 3x3 conv 64, 4x4/2 conv 128, 3x3 conv 128, 4x4/2 conv 256, 3x3 conv 256, 4x4/2 conv 512,
     3x3 conv 512 (LeakyReLU 0.2 after each; BatchNorm without scale after all but the first)
     -> dense (4*4*512 -> 1) logit.

Weights N(0, 0.02) (Radford et al.), convolutions with biases (as the source, also before BN),
BatchNorm decay 0.9 and epsilon 2e-5 (chainer's defaults). Both G and D keep BatchNorm statistics
in the 'batch_stats' collection: `train=True` normalises with the batch and updates them (apply
with mutable=['batch_stats']), `train=False` uses the running averages.

Timestep conditioning of D (`t_conditioning=True`, docs/families.md): the conv trunk and the
unconditional head are those of the t-less D; t adds a projection term
<e(t), sum over pixels of the last conv features>, e(t) an MLP of sinusoidal features of t.
"""
import flax.linen as nn
import jax.numpy as jnp

from dgan_jax.models.small_layers import (Conv2d, ConvTranspose2d, TimestepEmbedding, channels,
                                          check_square_images, check_unconditional)

INIT = nn.initializers.normal(0.02)
BN = dict(momentum=0.9, epsilon=2e-5)


class DCGANGenerator(nn.Module):
  """G(z [N, z_dim], c=None, train) -> images [N, 32, 32, img_channels] in [-1, 1]."""
  z_dim: int = 128
  width: float = 1.0         # Channel multiplier (1 = 512 at 4x4; tests use a small one).
  img_channels: int = 3
  bottom: int = 4

  @nn.compact
  def __call__(self, z, c=None, train: bool = True):
    check_unconditional(c, 'DCGANGenerator')
    if z.ndim != 2 or z.shape[1] != self.z_dim:
      raise ValueError(f'DCGANGenerator: expected z [N, {self.z_dim}], got {z.shape}')
    ch = channels(512, self.width)
    x = nn.Dense(self.bottom * self.bottom * ch, kernel_init=INIT, name='l0')(z)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, name='bn0', **BN)(x))
    x = x.reshape(z.shape[0], self.bottom, self.bottom, ch)
    for i, base in enumerate((256, 128, 64), start=1):
      x = ConvTranspose2d(channels(base, self.width), 4, 2, 1, kernel_init=INIT, name=f'dc{i}')(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train, name=f'bn{i}', **BN)(x))
    x = Conv2d(self.img_channels, 3, 1, 1, kernel_init=INIT, name='dc4')(x)
    return jnp.tanh(x)


# (name, base channels, kernel, stride) of D's convolutions, from the image to 4x4.
D_LAYERS = (('c0_0', 64, 3, 1), ('c0_1', 128, 4, 2), ('c1_0', 128, 3, 1), ('c1_1', 256, 4, 2),
            ('c2_0', 256, 3, 1), ('c2_1', 512, 4, 2), ('c3_0', 512, 3, 1))


class DCGANDiscriminator(nn.Module):
  """D(img [N, 32, 32, C], c=None, t=None [N], train) -> logits [N, 1] float32.

  t_conditioning=False ignores t (the DCGAN baseline); True adds the projection term (t=None is
  read as t=0, a clean sample).
  """
  width: float = 1.0
  batchnorm: bool = True     # BatchNorm after every conv but the first (Radford et al.).
  negative_slope: float = 0.2
  t_conditioning: bool = False
  t_embedding: str = 'sinusoidal'
  t_embed_dim: int = 128
  t_max: float = 1000.0

  @nn.compact
  def __call__(self, img, c=None, t=None, train: bool = True):
    check_unconditional(c, 'DCGANDiscriminator')
    check_square_images(img, 8, 'DCGANDiscriminator')
    x = img.astype(jnp.float32)
    for i, (name, base, k, stride) in enumerate(D_LAYERS):
      x = Conv2d(channels(base, self.width), k, stride, 1, kernel_init=INIT, name=name)(x)
      if self.batchnorm and i > 0:
        x = nn.BatchNorm(use_running_average=not train, use_scale=False, name=f'bn{name[1:]}',
                         **BN)(x)
      x = nn.leaky_relu(x, self.negative_slope)
    logit = nn.Dense(1, kernel_init=INIT, name='l4')(x.reshape(x.shape[0], -1))
    if self.t_conditioning:
      t = jnp.zeros((img.shape[0],), jnp.int32) if t is None else t
      dense = lambda features, name: nn.Dense(features, kernel_init=INIT, name=name)  # noqa: E731
      e = TimestepEmbedding(x.shape[-1], dense, self.t_embedding, self.t_max, self.t_embed_dim,
                            name='t_embed')(t)
      logit = logit + (e * x.sum(axis=(1, 2))).sum(axis=1, keepdims=True)
    return logit
