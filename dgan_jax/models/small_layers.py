"""Plain layers of the small GAN families (DCGAN, SNGAN) and their timestep projection.

Unlike models/layers.py (StyleGAN2's equalised-learning-rate layers), these hold their weights at
the scale they are used, with the initialisers of the original code passed in. Convolutions go
through models/torch_layers.py (models/conv.py), so strided and transposed ones stay on XLA:CPU's
fast path.

Weight layouts: conv kernels HWIO [kh, kw, in, out], dense kernels [in, out]; every
spectral-norm implementation that reshapes a kernel to [-1, out] (flax's, and torch's on
[out, -1]) sees the same matrix up to a transpose, hence the same singular values.
"""
from typing import Any, Callable

import flax.linen as nn

from dgan_jax.models import torch_layers
from dgan_jax.models.discriminator import timestep_features

Initializer = Callable[..., Any]


def channels(base: int, width: float) -> int:
  """`base` channels scaled by the width multiplier (at least 1)."""
  return max(1, int(round(base * width)))


class Conv2d(nn.Module):
  """NHWC correlation with a square kernel, `stride` and symmetric zero `padding` (torch's)."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    w = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features))
    p = self.padding
    y = torch_layers.conv2d(x, w, self.stride, ((p, p), (p, p)))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,)).astype(x.dtype)
    return y


class ConvTranspose2d(nn.Module):
  """Transposed convolution with torch/chainer geometry: out = (in - 1) * stride - 2 p + k.

  Computed as a correlation of the `stride`-dilated input padded by k - 1 - p (the kernel is
  learned, so it is stored unflipped: a torch weight would need w[::-1, ::-1] and in/out swapped).
  """
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    w = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features))
    if self.padding > k - 1:
      raise ValueError(f'{self.name}: padding {self.padding} > kernel_size - 1 is not supported')
    # The learned kernel is stored unflipped; torch_layers flips a torch-layout one.
    y = torch_layers.conv_transpose2d(x, w[::-1, ::-1], self.stride, self.padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,)).astype(x.dtype)
    return y


class TimestepEmbedding(nn.Module):
  """t [N] -> e(t) [N, out_dim]: timestep features, dense, activation, dense.

  `dense(features, name)` builds each dense layer (so SNGAN can wrap them in spectral norm);
  it returns a callable `x -> y`.
  """
  out_dim: int
  dense: Callable[[int, str], Callable]
  kind: str = 'sinusoidal'
  t_max: float = 1000.0
  embed_dim: int = 128
  activation: Callable = nn.relu

  @nn.compact
  def __call__(self, t):
    h = timestep_features(t, self.kind, self.t_max, self.embed_dim)
    h = self.activation(self.dense(self.out_dim, 'fc0')(h))
    return self.dense(self.out_dim, 'fc1')(h)


def check_unconditional(c, who: str) -> None:
  """The small families are unconditional: a label input must be None or zero-width."""
  if c is not None and c.ndim == 2 and c.shape[1] > 0:
    raise ValueError(f'{who} is unconditional but got labels of width {c.shape[1]}; set '
                     'config.data.use_labels=False (or model.c_dim=0) for this family.')


def check_square_images(img, multiple: int, who: str) -> None:
  """D inputs must be square NHWC images whose side is a multiple of `multiple`."""
  if img.ndim != 4 or img.shape[1] != img.shape[2] or img.shape[1] % multiple:
    raise ValueError(f'{who}: expected square NHWC images with a side divisible by {multiple}, '
                     f'got {img.shape}')
