"""Layers with PyTorch's semantics, for networks ported from plain `torch.nn` code.

The Projected-GAN networks (FastGAN, the multi-scale discriminators, timm's EfficientNet) are built
from stock `torch.nn` layers, not StyleGAN2's equalized-learning-rate ones (`layers.py`). Porting
them exactly needs torch's conventions, collected here once:

* default initialisers: `nn.Conv2d` / `nn.Linear` / `nn.ConvTranspose2d` draw weight and bias from
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)); fan_in of a transposed
  convolution is out_channels/groups * k * k (torch reads dim 1 of its [in, out/g, k, k] weight);
* `BatchNorm2d`: batch statistics in training (biased variance to normalise, unbiased n/(n-1) for
  the running variance), running averages with momentum 0.1, eps 1e-5;
* convolutions on NHWC activations with HWIO weights (torch OIHW weights transpose (2, 3, 1, 0)),
  groups, and TF 'same' padding for timm's `tf_` models;
* `interpolate_bilinear`: `F.interpolate(mode='bilinear')` with either align_corners, no antialias.

Variable names follow torch (`weight`, `bias`, `running_mean`, `running_var`,
`num_batches_tracked`) so the state-dict mappings are plain renames and transposes.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.models import conv as fast_conv


def uniform_init(fan_in: int):
  """torch's default weight/bias initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def conv2d(x, w, stride: int = 1, padding=((0, 0), (0, 0)), groups: int = 1):
  """NHWC x HWIO ([kh, kw, in/groups, out]) cross-correlation, as torch's F.conv2d.

  `padding` is ((top, bottom), (left, right)). Dense and depthwise convolutions go through
  `models/conv.py` (XLA:CPU's fast paths); other grouped ones call `lax.conv_general_dilated`.
  """
  padding = tuple(tuple(p) for p in padding)
  w = w.astype(x.dtype)
  if groups == 1:
    return fast_conv.conv2d(x, w, stride=stride, padding=padding)
  if groups == x.shape[3] == w.shape[3] and w.shape[2] == 1:
    return fast_conv.depthwise_conv2d(x, w, stride=stride, padding=padding)
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=groups)


def conv_transpose2d(x, w, stride: int = 1, padding: int = 0):
  """NHWC transposed convolution, as torch's F.conv_transpose2d, with w [kh, kw, in, out].

  out[s*y + a - padding] += x[y] * w[a]: a correlation of the stride-dilated input, padded by
  k - 1 - padding, with the spatially flipped kernel.
  """
  kh, kw = w.shape[0], w.shape[1]
  pads = ((kh - 1 - padding,) * 2, (kw - 1 - padding,) * 2)
  return fast_conv.conv2d(x, w[::-1, ::-1].astype(x.dtype), padding=pads,
                          lhs_dilation=(stride, stride))


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow 'SAME' padding of one axis (timm's Conv2dSame): extra pixel after, not before."""
  total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def batch_norm_inference(x, mean, var, weight, bias, eps: float):
  """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, computed in float32."""
  scale = weight * jax.lax.rsqrt(var + eps)
  y = x.astype(jnp.float32) * scale + (bias - mean * scale)
  return y.astype(x.dtype)


class Linear(nn.Module):
  """nn.Linear(in, out): weight [in, out], torch's default init."""
  in_features: int
  out_features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    init = uniform_init(self.in_features)
    weight = self.param('weight', init, (self.in_features, self.out_features))
    y = jnp.matmul(x, weight.astype(x.dtype))
    if self.use_bias:
      y = y + self.param('bias', init, (self.out_features,)).astype(y.dtype)
    return y


class Embedding(nn.Module):
  """nn.Embedding(num, dim): weight [num, dim] ~ N(0, 1); looks up integer indices."""
  num_embeddings: int
  embedding_dim: int

  @nn.compact
  def __call__(self, index):
    table = self.param('weight', nn.initializers.normal(1.0),
                       (self.num_embeddings, self.embedding_dim))
    return jnp.take(table, index, axis=0)


class BatchNorm2d(nn.Module):
  """torch.nn.BatchNorm2d on NHWC activations (also the affine-free one of FastGAN's CCBN).

  `train=True`: normalise with the batch's biased statistics and, outside `init`, update the
  'batch_stats' collection as torch does (running = 0.9 running + 0.1 batch, variance unbiased,
  num_batches_tracked += 1); apply with `mutable=['batch_stats']`. `train=False`: use the
  running statistics.
  """
  num_features: int
  eps: float = 1e-5
  momentum: float = 0.1
  affine: bool = True
  count_batches: bool = True   # torch BatchNorm2d keeps num_batches_tracked; F.batch_norm users not.

  @nn.compact
  def __call__(self, x, train: bool):
    c = self.num_features
    if x.shape[-1] != c:
      raise ValueError(f'{self.name}: expected {c} channels (last axis), got shape {x.shape}.')
    mean_var = self.variable('batch_stats', 'running_mean', jnp.zeros, (c,), jnp.float32)
    var_var = self.variable('batch_stats', 'running_var', jnp.ones, (c,), jnp.float32)
    count = (self.variable('batch_stats', 'num_batches_tracked', jnp.zeros, (), jnp.int32)
             if self.count_batches else None)
    if train:
      xf = x.astype(jnp.float32)
      axes = tuple(range(x.ndim - 1))
      mean = xf.mean(axis=axes)
      var = jnp.square(xf - mean).mean(axis=axes)
      if not self.is_initializing():
        n = int(np.prod([x.shape[a] for a in axes]))
        m = self.momentum
        unbiased = var * (n / max(n - 1, 1))
        mean_var.value = (1 - m) * mean_var.value + m * jax.lax.stop_gradient(mean)
        var_var.value = (1 - m) * var_var.value + m * jax.lax.stop_gradient(unbiased)
        if count is not None:
          count.value = count.value + 1
    else:
      mean, var = mean_var.value, var_var.value
    if self.affine:
      weight = self.param('weight', nn.initializers.ones, (c,), jnp.float32)
      bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    else:
      weight, bias = jnp.ones((c,), jnp.float32), jnp.zeros((c,), jnp.float32)
    return batch_norm_inference(x, mean, var, weight, bias, self.eps)


def _interp_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
  """[out, in] weights of torch's 1-D linear interpolation (upsample_bilinear2d, no antialias)."""
  m = np.zeros((out_size, in_size), np.float64)
  for o in range(out_size):
    if align_corners:
      src = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
      src = max((o + 0.5) * in_size / out_size - 0.5, 0.0)
    i0 = min(int(math.floor(src)), in_size - 1)
    i1 = min(i0 + 1, in_size - 1)
    frac = src - i0
    m[o, i0] += 1.0 - frac
    m[o, i1] += frac
  return m.astype(np.float32)


def interpolate_bilinear(x, size: Sequence[int], align_corners: bool):
  """torch's F.interpolate(x, size, mode='bilinear', align_corners=...) on NHWC, separably."""
  out_h, out_w = size
  mh = jnp.asarray(_interp_matrix(x.shape[1], out_h, align_corners), x.dtype)
  mw = jnp.asarray(_interp_matrix(x.shape[2], out_w, align_corners), x.dtype)
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,nhwc->nowc', mh, x, precision=hi)
  return jnp.einsum('pw,nowc->nopc', mw, x, precision=hi)


def upsample_nearest2x(x):
  """nn.Upsample(scale_factor=2, mode='nearest') on NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool(x, factor: int):
  """Non-overlapping average pooling by `factor` (nn.AvgPool2d(f, f); AdaptiveAvgPool2d to
  H/f when H is a multiple of the target size)."""
  n, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f'avg_pool: {h}x{w} is not a multiple of {factor}.')
  return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def adaptive_avg_pool(x, size: int):
  """nn.AdaptiveAvgPool2d(size) for inputs whose sides are multiples of `size`."""
  if x.shape[1] != x.shape[2] or x.shape[1] % size:
    raise ValueError(f'adaptive_avg_pool: square inputs with a side multiple of {size} are '
                     f'supported, got {x.shape[1]}x{x.shape[2]}.')
  return avg_pool(x, x.shape[1] // size)


def leaky_relu(x, slope: float = 0.2):
  return jnp.where(x >= 0, x, x * jnp.asarray(slope, x.dtype))


def glu(x):
  """FastGAN's GLU over channels (last axis): first half * sigmoid(second half)."""
  c = x.shape[-1]
  if c % 2:
    raise ValueError(f'GLU needs an even number of channels, got {c}.')
  return x[..., :c // 2] * jax.nn.sigmoid(x[..., c // 2:])
