"""Spectral normalisation with the exact semantics of `torch.nn.utils.spectral_norm`.

flax.linen.SpectralNorm does not reproduce torch: it keeps no `v`, reruns the power iteration in
evaluation and lays the weight matrix out differently. torch, for a weight W viewed as the matrix
M = W reshaped to [rows, -1] (rows = output channels; dim 1 of a ConvTranspose weight):

* construction: u = normalize(N(0, I_rows)), v = normalize(N(0, I_cols)), eps 1e-12;
* training forward: one power iteration without gradient, v <- normalize(M^T u),
  u <- normalize(M v), stored; then sigma = u . (M v) with u, v constants, W / sigma;
* evaluation forward: sigma = u . (M v) from the *stored* u, v and the *current* W (no iteration).

Here u and v live in the 'spectral' collection as `weight_u`, `weight_v` (torch's buffer names,
in torch's layout: the column order of M is torch's (in, kh, kw)). `update=True` is the training
forward and needs `mutable=['spectral']`; during `init` the draws are stored without an
iteration, like a freshly constructed torch module. The wrapped layers keep the raw weight as
param `weight` (torch's `weight_orig`).

`spectral_normalize` does the work for any weight; `SNConv2d`, `SNConvTranspose2d` and `SNDense`
are the three layers the Projected-GAN networks use (SNGAN reuses them).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgan_jax.models import torch_layers

EPS = 1e-12
_HI = jax.lax.Precision.HIGHEST


def _normalize(x, eps: float):
  """F.normalize(x, dim=0, eps): x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(x))), eps)


def spectral_normalize(module: nn.Module, weight, matrix, *, update: bool, eps: float = EPS,
                       n_power_iterations: int = 1, collection: str = 'spectral'):
  """Returns `weight / sigma`, keeping u, v as variables `weight_u`, `weight_v` of `module`.

  Args:
    module: the calling module (the variables are created in its scope).
    weight: the raw weight, any layout.
    matrix: the same weight viewed as torch's 2-D matrix [rows, cols] (a function of `weight`,
      so the gradient of sigma reaches the weight as in torch).
    update: run the power iteration and store u, v (torch's training mode).
  """
  rows, cols = matrix.shape
  u_var = module.variable(collection, 'weight_u', lambda: _normalize(
      jax.random.normal(module.make_rng('params'), (rows,), jnp.float32), eps))
  v_var = module.variable(collection, 'weight_v', lambda: _normalize(
      jax.random.normal(module.make_rng('params'), (cols,), jnp.float32), eps))
  u, v = u_var.value, v_var.value
  mat = matrix.astype(jnp.float32)
  if update and not module.is_initializing():
    fixed = jax.lax.stop_gradient(mat)
    for _ in range(n_power_iterations):
      v = _normalize(jnp.matmul(u, fixed, precision=_HI), eps)
      u = _normalize(jnp.matmul(fixed, v, precision=_HI), eps)
    u_var.value, v_var.value = u, v
  u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
  sigma = jnp.dot(u, jnp.matmul(mat, v, precision=_HI), precision=_HI)
  return weight / sigma.astype(weight.dtype)


def conv_matrix(weight_hwio):
  """torch's matrix of a conv weight stored HWIO: OIHW reshaped to [out, in * kh * kw]."""
  return jnp.transpose(weight_hwio, (3, 2, 0, 1)).reshape(weight_hwio.shape[3], -1)


class SNConv2d(nn.Module):
  """spectral_norm(nn.Conv2d(in, out, k, stride, padding, groups=groups, bias=use_bias)), NHWC.

  Weight [k, k, in/groups, out] (HWIO), torch's default init.
  """
  in_channels: int
  out_channels: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  groups: int = 1
  use_bias: bool = True

  def __post_init__(self):
    if self.in_channels % self.groups or self.out_channels % self.groups:
      raise ValueError(f'SNConv2d: in_channels={self.in_channels} and out_channels='
                       f'{self.out_channels} must be multiples of groups={self.groups}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, update: bool):
    if x.shape[-1] != self.in_channels:
      raise ValueError(f'{self.name}: expected {self.in_channels} input channels (last axis), '
                       f'got shape {x.shape}.')
    k, cin = self.kernel_size, self.in_channels // self.groups
    init = torch_layers.uniform_init(cin * k * k)
    weight = self.param('weight', init, (k, k, cin, self.out_channels))
    w = spectral_normalize(self, weight, conv_matrix(weight), update=update)
    p = self.padding
    y = torch_layers.conv2d(x, w, self.stride, ((p, p), (p, p)), self.groups)
    if self.use_bias:
      y = y + self.param('bias', init, (self.out_channels,)).astype(y.dtype)
    return y


class SNConvTranspose2d(nn.Module):
  """spectral_norm(nn.ConvTranspose2d(in, out, k, stride, padding, bias=use_bias)), NHWC.

  Weight [k, k, in, out]; torch's [in, out, k, k] with spectral_norm's dim=1, so the matrix rows
  are the output channels here too. Default init with fan_in = out * k * k (torch's rule).
  """
  in_channels: int
  out_channels: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x, update: bool):
    if x.shape[-1] != self.in_channels:
      raise ValueError(f'{self.name}: expected {self.in_channels} input channels (last axis), '
                       f'got shape {x.shape}.')
    k = self.kernel_size
    init = torch_layers.uniform_init(self.out_channels * k * k)
    weight = self.param('weight', init, (k, k, self.in_channels, self.out_channels))
    w = spectral_normalize(self, weight, conv_matrix(weight), update=update)
    y = torch_layers.conv_transpose2d(x, w, self.stride, self.padding)
    if self.use_bias:
      y = y + self.param('bias', init, (self.out_channels,)).astype(y.dtype)
    return y


class SNDense(nn.Module):
  """spectral_norm(nn.Linear(in, out, bias=use_bias)); weight [in, out], torch's default init."""
  in_features: int
  out_features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x, update: bool):
    if x.shape[-1] != self.in_features:
      raise ValueError(f'{self.name}: expected {self.in_features} input features (last axis), '
                       f'got shape {x.shape}.')
    init = torch_layers.uniform_init(self.in_features)
    weight = self.param('weight', init, (self.in_features, self.out_features))
    w = spectral_normalize(self, weight, weight.T, update=update)
    y = jnp.matmul(x, w.astype(x.dtype))
    if self.use_bias:
      y = y + self.param('bias', init, (self.out_features,)).astype(y.dtype)
    return y
