"""The FID Inception-v3 network (TF graph `inception-2015-12-05`) as a flax.linen module.

Structure and parameter names follow pytorch-fid's `fid_inception_v3` (torchvision's Inception3
with the FID-specific blocks), so a pytorch-fid state dict maps onto it key by key:
* the average pools inside the A, C and first E blocks exclude padding from the mean
  (`count_include_pad=False`, as TensorFlow's avg_pool does);
* the last E block (`Mixed_7c`) pools with a 3x3 *max* pool, as the TF graph does;
* batch norm uses eps = 1e-3 and running statistics (inference only);
* the classifier has 1008 outputs (the TF graph's label space).

Input: float32 NHWC 299x299 already normalised as `(x - 128) / 128` (see `inception.preprocess`).
Output: `(pool_features [N, 2048], logits [N, 1008])`.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Pad = int | tuple[int, int]
BN_EPS = 1e-3


def _padding(pad: Pad) -> tuple[tuple[int, int], tuple[int, int]]:
  ph, pw = (pad, pad) if isinstance(pad, int) else pad
  return ((ph, ph), (pw, pw))


class _ConvKernel(nn.Module):
  """Holds `conv/kernel` (HWIO), named like torchvision's BasicConv2d.conv."""
  features: int
  kernel: Sequence[int]

  @nn.compact
  def __call__(self, in_features: int):
    return self.param('kernel', nn.initializers.lecun_normal(),
                      (*self.kernel, in_features, self.features))


class _BatchNormStats(nn.Module):
  """Holds `bn/{scale,bias}` (params) and `bn/{mean,var}` (batch_stats), as flax's BatchNorm."""
  features: int

  @nn.compact
  def __call__(self):
    scale = self.param('scale', nn.initializers.ones, (self.features,))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (self.features,)).value
    var = self.variable('batch_stats', 'var', jnp.ones, (self.features,)).value
    return scale, bias, mean, var


def _folded_conv_bn(features: int, kernel_shape: Sequence[int], in_features: int):
  """Creates (inside the calling module) the `conv` and `bn` variables of one conv + batch norm
  unit and returns them folded into (kernel, bias).

  Folding is exact algebra (BN is affine at inference) and saves a pass over every activation;
  the variables keep the unfolded pytorch-fid layout so weight files map one to one.
  """
  kernel = _ConvKernel(features, tuple(kernel_shape), name='conv')(in_features)
  scale, bias, mean, var = _BatchNormStats(features, name='bn')()
  mult = scale * jax.lax.rsqrt(var + BN_EPS)
  return kernel * mult, bias - mean * mult


class ConvBN(nn.Module):
  """The folded (kernel, bias) of one conv + BN unit, for callers that run the conv themselves."""
  features: int
  kernel: Sequence[int]

  @nn.compact
  def __call__(self, in_features: int):
    return _folded_conv_bn(self.features, self.kernel, in_features)


def _conv_relu(x, kernel, bias, stride=1, pad: Pad = 0, precision=None):
  y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), _padding(pad),
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                   precision=precision)
  return nn.relu(y + bias)


class BasicConv(nn.Module):
  """Conv (no bias) -> batch norm (running stats, eps 1e-3) -> ReLU, like torchvision's BasicConv2d."""
  features: int
  kernel: Sequence[int]
  stride: int = 1
  pad: Pad = 0
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    kernel, bias = _folded_conv_bn(self.features, self.kernel, x.shape[-1])
    return _conv_relu(x, kernel, bias, self.stride, self.pad, self.precision)


def _pointwise_group(x, specs, precision):
  """Several 1x1 BasicConvs reading the same input, run as one wider 1x1 conv and split.

  `specs` are (name, features) pairs; each keeps its own variables. One big matmul uses the
  hardware better than three thin ones.
  """
  units = [ConvBN(f, (1, 1), name=name)(x.shape[-1]) for name, f in specs]
  kernel = jnp.concatenate([k for k, _ in units], axis=-1)
  bias = jnp.concatenate([b for _, b in units], axis=-1)
  y = _conv_relu(x, kernel, bias, precision=precision)
  splits = np.cumsum([f for _, f in specs])[:-1]
  return jnp.split(y, splits, axis=-1)


def _pad_hw(x, value):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=value)


def _avg_pool_3x3_same(x):
  """3x3 stride-1 average pool whose mean ignores the zero padding (TensorFlow semantics).

  Written as shifted slices (separable sum) and a static divisor map: XLA fuses it into one loop,
  2-3x faster on CPU than reduce_window.
  """
  _, h, w, _ = x.shape
  xp = _pad_hw(x, 0.0)
  rows = xp[:, 0:h] + xp[:, 1:h + 1] + xp[:, 2:h + 2]
  total = rows[:, :, 0:w] + rows[:, :, 1:w + 1] + rows[:, :, 2:w + 2]
  count_h = np.full(h, 3.0, np.float32)
  count_w = np.full(w, 3.0, np.float32)
  count_h[[0, -1]] -= 1
  count_w[[0, -1]] -= 1
  return total / (count_h[:, None] * count_w[None, :])[None, :, :, None]


def _max_pool_3x3_same(x):
  """3x3 stride-1 max pool with -inf padding, as shifted-slice maxima."""
  _, h, w, _ = x.shape
  xp = _pad_hw(x, -jnp.inf)
  rows = jnp.maximum(jnp.maximum(xp[:, 0:h], xp[:, 1:h + 1]), xp[:, 2:h + 2])
  return jnp.maximum(jnp.maximum(rows[:, :, 0:w], rows[:, :, 1:w + 1]), rows[:, :, 2:w + 2])


def _max_pool_3x3_s2(x):
  """3x3 stride-2 VALID max pool, as strided-slice maxima."""
  _, h, w, _ = x.shape
  oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
  rows = jnp.maximum(jnp.maximum(x[:, 0:2 * oh - 1:2], x[:, 1:2 * oh:2]), x[:, 2:2 * oh + 1:2])
  return jnp.maximum(jnp.maximum(rows[:, :, 0:2 * ow - 1:2], rows[:, :, 1:2 * ow:2]),
                     rows[:, :, 2:2 * ow + 1:2])


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d: 1x1, 5x5, double 3x3 and avg-pool branches."""
  pool_features: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    c = lambda f, k, p=0, name=None: BasicConv(f, k, pad=p, precision=self.precision, name=name)
    b1, b5, b3 = _pointwise_group(
        x, [('branch1x1', 64), ('branch5x5_1', 48), ('branch3x3dbl_1', 64)], self.precision)
    b5 = c(64, (5, 5), 2, name='branch5x5_2')(b5)
    b3 = c(96, (3, 3), 1, name='branch3x3dbl_2')(b3)
    b3 = c(96, (3, 3), 1, name='branch3x3dbl_3')(b3)
    bp = c(self.pool_features, (1, 1), name='branch_pool')(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 -> 17."""
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), stride=2, precision=self.precision, name='branch3x3')(x)
    bd = BasicConv(64, (1, 1), precision=self.precision, name='branch3x3dbl_1')(x)
    bd = BasicConv(96, (3, 3), pad=1, precision=self.precision, name='branch3x3dbl_2')(bd)
    bd = BasicConv(96, (3, 3), stride=2, precision=self.precision, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e: factorised 7x7 branches."""
  channels_7x7: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    c = lambda f, k, p=0, name=None: BasicConv(f, k, pad=p, precision=self.precision, name=name)
    b1, b7, bd = _pointwise_group(
        x, [('branch1x1', 192), ('branch7x7_1', c7), ('branch7x7dbl_1', c7)], self.precision)
    b7 = c(c7, (1, 7), (0, 3), name='branch7x7_2')(b7)
    b7 = c(192, (7, 1), (3, 0), name='branch7x7_3')(b7)
    bd = c(c7, (7, 1), (3, 0), name='branch7x7dbl_2')(bd)
    bd = c(c7, (1, 7), (0, 3), name='branch7x7dbl_3')(bd)
    bd = c(c7, (7, 1), (3, 0), name='branch7x7dbl_4')(bd)
    bd = c(192, (1, 7), (0, 3), name='branch7x7dbl_5')(bd)
    bp = c(192, (1, 1), name='branch_pool')(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 -> 8."""
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    c = lambda f, k, s=1, p=0, name=None: BasicConv(f, k, s, p, precision=self.precision, name=name)
    b3, b7 = _pointwise_group(x, [('branch3x3_1', 192), ('branch7x7x3_1', 192)], self.precision)
    b3 = c(320, (3, 3), 2, name='branch3x3_2')(b3)
    b7 = c(192, (1, 7), 1, (0, 3), name='branch7x7x3_2')(b7)
    b7 = c(192, (7, 1), 1, (3, 0), name='branch7x7x3_3')(b7)
    b7 = c(192, (3, 3), 2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (avg pool, padding excluded) and Mixed_7c (max pool: the TF graph's quirk)."""
  pool: str = 'avg'
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    c = lambda f, k, p=0, name=None: BasicConv(f, k, pad=p, precision=self.precision, name=name)
    b1, b3, bd = _pointwise_group(
        x, [('branch1x1', 320), ('branch3x3_1', 384), ('branch3x3dbl_1', 448)], self.precision)
    b3a = c(384, (1, 3), (0, 1), name='branch3x3_2a')(b3)
    b3b = c(384, (3, 1), (1, 0), name='branch3x3_2b')(b3)
    bd = c(384, (3, 3), 1, name='branch3x3dbl_2')(bd)
    bda = c(384, (1, 3), (0, 1), name='branch3x3dbl_3a')(bd)
    bdb = c(384, (3, 1), (1, 0), name='branch3x3dbl_3b')(bd)
    pooled = _avg_pool_3x3_same(x) if self.pool == 'avg' else _max_pool_3x3_same(x)
    bp = c(192, (1, 1), name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3a, b3b, bda, bdb, bp], axis=-1)


class Classifier(nn.Module):
  """Dense layer whose bias can be left out at call time while still being a parameter."""
  num_classes: int
  use_bias: bool = True
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (x.shape[-1], self.num_classes))
    bias = self.param('bias', nn.initializers.zeros, (self.num_classes,))
    y = jnp.dot(x, kernel, precision=self.precision)
    return y + bias if self.use_bias else y


class InceptionV3(nn.Module):
  """FID Inception-v3: preprocessed 299x299 NHWC -> (pool features [N, 2048], logits [N, 1008]).

  `output_bias=False` drops the classifier bias, as the reference's Inception Score does
  (`no_output_bias=True`). `precision` is passed to every conv and dense layer; the default
  'highest' keeps float32 accuracy on GPUs/TPUs (the reference disables TF32).
  """
  num_classes: int = 1008
  output_bias: bool = True
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    p = self.precision
    x = BasicConv(32, (3, 3), stride=2, precision=p, name='Conv2d_1a_3x3')(x)
    x = BasicConv(32, (3, 3), precision=p, name='Conv2d_2a_3x3')(x)
    x = BasicConv(64, (3, 3), pad=1, precision=p, name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv(80, (1, 1), precision=p, name='Conv2d_3b_1x1')(x)
    x = BasicConv(192, (3, 3), precision=p, name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, precision=p, name='Mixed_5b')(x)
    x = InceptionA(64, precision=p, name='Mixed_5c')(x)
    x = InceptionA(64, precision=p, name='Mixed_5d')(x)
    x = InceptionB(precision=p, name='Mixed_6a')(x)
    x = InceptionC(128, precision=p, name='Mixed_6b')(x)
    x = InceptionC(160, precision=p, name='Mixed_6c')(x)
    x = InceptionC(160, precision=p, name='Mixed_6d')(x)
    x = InceptionC(192, precision=p, name='Mixed_6e')(x)
    x = InceptionD(precision=p, name='Mixed_7a')(x)
    x = InceptionE('avg', precision=p, name='Mixed_7b')(x)
    x = InceptionE('max', precision=p, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    logits = Classifier(self.num_classes, self.output_bias, precision=p, name='fc')(pool)
    return pool, logits
