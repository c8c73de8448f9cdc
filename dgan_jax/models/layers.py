"""Equalized-learning-rate building blocks of StyleGAN2 (reference `training/networks.py`).

Every layer stores the *raw* parameters the reference stores (weights ~ N(0, 1) / lr_multiplier,
biases = bias_init) and applies the gains at run time, so Adam sees the same numbers as in
PyTorch and the export is a plain transpose. Layouts are JAX-native: fully connected weights are
[in, out], convolution weights [kh, kw, in, out] (HWIO); `torch_names.py` maps them back.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.models import upfirdn2d as fir

ACTIVATIONS = ('linear', 'lrelu', 'relu')
_DEFAULT_GAIN = {'linear': 1.0, 'lrelu': float(np.sqrt(2.0)), 'relu': float(np.sqrt(2.0))}
RESAMPLE_FILTER = fir.setup_filter((1, 3, 3, 1))


def check_activation(activation: str) -> None:
  if activation not in ACTIVATIONS:
    raise ValueError(f'Unknown activation {activation!r}; use one of {ACTIVATIONS}.')


def check_channels(x, expected: int, where: str) -> None:
  """Raise at trace time (before any compile) when the last axis is not `expected`."""
  if x.shape[-1] != expected:
    raise ValueError(f'{where}: expected {expected} input channels (last axis, NHWC), got '
                     f'shape {tuple(x.shape)}. Check img_channels / the channel configuration.')


def leaky_relu(x, alpha: float = 0.2):
  """x if x > 0 else alpha * x; the derivative at exactly 0 is alpha, as torch's leaky_relu and the
  reference's bias_act kernel (`x > 0 ? x : x * alpha`) have it (jax.nn.leaky_relu gives 1 there).

  The one leaky ReLU of dgan_jax: bias_act and the toy MLPs use it.
  """
  return jnp.where(x > 0, x, x * jnp.asarray(alpha, x.dtype))


def bias_act(x, b=None, activation: str = 'linear', gain: Optional[float] = None,
             clamp: Optional[float] = None):
  """x + b, activation, times gain (default: the activation's gain), clamp to +-clamp."""
  if b is not None:
    x = x + b.astype(x.dtype)
  if activation == 'lrelu':
    x = leaky_relu(x, 0.2)
  elif activation == 'relu':
    x = jnp.maximum(x, 0)
  if gain is None:
    gain = _DEFAULT_GAIN[activation]
  if gain != 1:
    x = x * jnp.asarray(gain, x.dtype)
  if clamp is not None and clamp >= 0:
    x = jnp.clip(x, min=-clamp, max=clamp)
  return x


def normalize_2nd_moment(x, axis: int = -1, eps: float = 1e-8):
  """x / sqrt(mean(x**2) + eps) along `axis` (the features)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


class FullyConnectedLayer(nn.Module):
  """Dense layer with equalized learning rate, lr multiplier and bias init (weight [in, out])."""
  in_features: int
  out_features: int
  activation: str = 'linear'
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  def __post_init__(self):
    check_activation(self.activation)
    if self.in_features < 1 or self.out_features < 1:
      raise ValueError(f'FullyConnectedLayer needs positive sizes, got in={self.in_features}, '
                       f'out={self.out_features}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    check_channels(x, self.in_features, f'{self.name or "FullyConnectedLayer"}')
    lr = self.lr_multiplier
    weight = self.param('weight', lambda key, shape: jax.random.normal(key, shape) / lr,
                        (self.in_features, self.out_features))
    w = weight.astype(x.dtype) * jnp.asarray(lr / np.sqrt(self.in_features), x.dtype)
    x = x @ w
    b = None
    if self.use_bias:
      bias = self.param('bias', nn.initializers.constant(self.bias_init), (self.out_features,))
      b = bias.astype(x.dtype) * jnp.asarray(lr, x.dtype) if lr != 1 else bias
    return bias_act(x, b, self.activation)


class Conv2dLayer(nn.Module):
  """Convolution with equalized learning rate, optional FIR up/down sampling, bias, act, clamp."""
  in_channels: int
  out_channels: int
  kernel_size: int
  activation: str = 'linear'
  up: int = 1
  down: int = 1
  conv_clamp: Optional[float] = None
  use_bias: bool = True

  def __post_init__(self):
    check_activation(self.activation)
    if min(self.in_channels, self.out_channels, self.kernel_size) < 1:
      raise ValueError(f'Conv2dLayer needs positive in/out channels and kernel size, got '
                       f'{self.in_channels}, {self.out_channels}, {self.kernel_size}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, gain: float = 1.0):
    check_channels(x, self.in_channels, f'{self.name or "Conv2dLayer"}')
    k = self.kernel_size
    weight = self.param('weight', nn.initializers.normal(1.0),
                        (k, k, self.in_channels, self.out_channels))
    w = (weight * (1.0 / np.sqrt(self.in_channels * k * k))).astype(x.dtype)
    x = fir.conv2d_resample(x, w, RESAMPLE_FILTER, up=self.up, down=self.down, padding=k // 2,
                            flip_weight=(self.up == 1))
    b = self.param('bias', nn.initializers.zeros, (self.out_channels,)) if self.use_bias else None
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, b, self.activation, gain=_DEFAULT_GAIN[self.activation] * gain,
                    clamp=clamp)


class MinibatchStdLayer(nn.Module):
  """Appends the within-group standard deviation as extra feature maps (NHWC).

  Groups follow the reference: G = min(group_size, N) and group j holds samples
  j, j + N/G, j + 2N/G, ... (a reshape to [G, N/G, ...]); N must be divisible by G.
  """
  group_size: Optional[int] = 4
  num_channels: int = 1

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    g = min(self.group_size, n) if self.group_size else n
    f = self.num_channels
    if n % g or c % f:
      raise ValueError(f'MinibatchStdLayer: batch {n} must be divisible by the group size {g} '
                       f'(mbstd_group_size={self.group_size}) and channels {c} by {f}; call D '
                       f'on sub-batches of a multiple of the group size.')
    y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
    y = y - y.mean(axis=0)
    y = jnp.sqrt(jnp.square(y).mean(axis=0) + 1e-8)   # [n, H, W, F, c]
    y = y.mean(axis=(1, 2, 4))                          # [n, F]
    y = jnp.tile(y, (g, 1)).astype(x.dtype)             # sample k gets group statistic k % n
    y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f))
    return jnp.concatenate([x, y], axis=-1)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, padding: int = 0,
                     resample_filter: Any = None, demodulate: bool = True,
                     flip_weight: bool = True):
  """StyleGAN2 modulated convolution (non-fused form: scale activations, shared conv, rescale).

  Args:
    x: [N, H, W, I] activations (compute dtype).
    weight: raw weight [kh, kw, I, O] (float32).
    styles: [N, I] float32 modulation coefficients.
    noise: optional array broadcastable to the output, added after demodulation.
  Mathematically identical to the reference's fused grouped convolution. In reduced precision
  the weights and styles are pre-normalised by their max-norm as in the reference's fp16 path.
  """
  kh, kw, cin, _ = weight.shape
  check_channels(x, cin, 'modulated_conv2d')
  if styles.shape != (x.shape[0], cin):
    raise ValueError(f'modulated_conv2d: styles must be [N, {cin}], got {styles.shape}.')
  weight = weight.astype(jnp.float32)
  styles = styles.astype(jnp.float32)
  if x.dtype != jnp.float32 and demodulate:
    weight = weight * (1.0 / np.sqrt(cin * kh * kw) /
                       jnp.max(jnp.abs(weight), axis=(0, 1, 2), keepdims=True))
    styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)
  dcoefs = None
  if demodulate:
    # sum_{i,k} (w[k,i,o] s[n,i])^2 = sum_i s[n,i]^2 * sum_k w[k,i,o]^2
    dcoefs = jax.lax.rsqrt(jnp.square(styles) @ jnp.square(weight).sum(axis=(0, 1)) + 1e-8)
  x = x * styles.astype(x.dtype)[:, None, None, :]
  x = fir.conv2d_resample(x, weight.astype(x.dtype), resample_filter, up=up, padding=padding,
                          flip_weight=flip_weight)
  if dcoefs is not None:
    x = x * dcoefs.astype(x.dtype)[:, None, None, :]
  if noise is not None:
    x = x + noise.astype(x.dtype)
  return x
