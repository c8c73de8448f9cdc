"""A self-contained PyTorch StyleGAN2 generator that runs exported dgan_jax weights.

`TorchGenerator(**G_kwargs)` takes the reference's `Generator` kwargs, has exactly the reference's
state-dict keys, and computes the reference's float32 inference forward (mapping, truncation,
modulated convolutions, FIR up-sampling, skip/orig/resnet synthesis, const/random/no noise). It
needs only torch, not the reference code: the tests use it to prove the export is exact, and users
can run exported generators with it. Images are NCHW float32 in about [-1, 1].
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

try:
  import torch
  from torch import nn
  from torch.nn import functional as F
except ImportError as e:  # Torch is an optional extra.
  raise ImportError("dgan_jax.interop.torch_generator needs PyTorch, which is not installed: "
                    "pip install 'dgan_jax[torch]' (torch==2.13.0).") from e

_FILTER = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64.0


def _filter_buffer() -> torch.Tensor:
  return torch.from_numpy(_FILTER.copy())


def bias_act(x, b, act: str = 'linear', gain: float = 1.0, clamp: Optional[float] = None):
  """x + b (per channel, dim 1), lrelu(0.2) or identity, times gain, clamp to +-clamp."""
  if b is not None:
    x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
  if act == 'lrelu':
    x = F.leaky_relu(x, 0.2)
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = x.clamp(-clamp, clamp)
  return x


def upfirdn2d(x, f, up: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0):
  """Zero-stuff by `up`, pad [x0, x1, y0, y1] (negative crops), convolve with the 2-D FIR `f`."""
  n, c, h, w = x.shape
  if up > 1:
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
  x0, x1, y0, y1 = pad
  x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
  x = x[:, :, max(-y0, 0):x.shape[2] - max(-y1, 0), max(-x0, 0):x.shape[3] - max(-x1, 0)]
  kernel = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1).to(x.dtype)
  return F.conv2d(x, kernel, groups=c)


def conv2d_resample(x, weight, f, up: int = 1, padding: int = 0, flip_weight: bool = True):
  """Convolution with optional 2x FIR up-sampling, padding relative to the up-sampled image.

  `flip_weight=False` is a true convolution (the reference's choice for up-sampling layers).
  """
  if not flip_weight:
    weight = weight.flip([2, 3])
  if up == 1:
    return F.conv2d(x, weight, padding=padding)
  fw = f.shape[-1]
  p0, p1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
  x = upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up * up)
  return F.conv2d(x, weight)


def normalize_2nd_moment(x, eps: float = 1e-8):
  return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
  def __init__(self, in_features, out_features, activation='linear', lr_multiplier=1.0,
               bias=True):
    super().__init__()
    self.activation = activation
    self.weight = nn.Parameter(torch.zeros([out_features, in_features]))
    self.bias = nn.Parameter(torch.zeros([out_features])) if bias else None
    self.weight_gain = lr_multiplier / math.sqrt(in_features)
    self.bias_gain = lr_multiplier

  def forward(self, x):
    b = self.bias * self.bias_gain if self.bias is not None else None
    x = x.matmul((self.weight * self.weight_gain).t())
    return bias_act(x, b, self.activation, gain=math.sqrt(2) if self.activation == 'lrelu' else 1)


class Conv2dLayer(nn.Module):
  """Only the synthesis 'resnet' skip (1x1, up 2, no bias) needs it on the generator side."""

  def __init__(self, in_channels, out_channels, kernel_size, up=1, bias=True):
    super().__init__()
    self.up = up
    self.padding = kernel_size // 2
    self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, kernel_size, kernel_size]))
    self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
    self.register_buffer('resample_filter', _filter_buffer())
    self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

  def forward(self, x, gain=1.0):
    x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, up=self.up,
                        padding=self.padding, flip_weight=(self.up == 1))
    return bias_act(x, self.bias, 'linear', gain=gain)


class MappingNetwork(nn.Module):
  def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01,
               w_avg_beta=0.995):
    super().__init__()
    self.z_dim, self.c_dim, self.num_ws, self.num_layers = z_dim, c_dim, num_ws, num_layers
    embed = w_dim if c_dim else 0
    features = [z_dim + embed] + [w_dim] * num_layers
    if c_dim:
      self.embed = FullyConnectedLayer(c_dim, embed)
    for i in range(num_layers):
      setattr(self, f'fc{i}', FullyConnectedLayer(features[i], features[i + 1], 'lrelu',
                                                  lr_multiplier))
    self.register_buffer('w_avg', torch.zeros([w_dim]))

  def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None):
    parts = []
    if self.z_dim:
      parts.append(normalize_2nd_moment(z.to(torch.float32)))
    if self.c_dim:
      parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
    x = torch.cat(parts, dim=1)
    for i in range(self.num_layers):
      x = getattr(self, f'fc{i}')(x)
    x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
    if truncation_psi != 1:
      cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
      x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
    return x


class SynthesisLayer(nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, conv_clamp=None):
    super().__init__()
    self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp
    self.affine = FullyConnectedLayer(w_dim, in_channels)
    self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, 3, 3]))
    self.noise_strength = nn.Parameter(torch.zeros([]))
    self.bias = nn.Parameter(torch.zeros([out_channels]))
    self.register_buffer('resample_filter', _filter_buffer())
    self.register_buffer('noise_const', torch.zeros([resolution, resolution]))

  def forward(self, x, w, noise_mode='const', gain=1.0):
    styles = self.affine(w)
    wgt = self.weight[None] * styles[:, None, :, None, None]
    dcoefs = (wgt.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    x = x * styles[:, :, None, None]
    x = conv2d_resample(x, self.weight, self.resample_filter, up=self.up, padding=1,
                        flip_weight=(self.up == 1))
    x = x * dcoefs[:, :, None, None]
    if noise_mode == 'random':
      x = x + torch.randn([x.shape[0], 1, self.resolution, self.resolution]) * self.noise_strength
    elif noise_mode == 'const':
      x = x + self.noise_const * self.noise_strength
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, self.bias, 'lrelu', gain=math.sqrt(2) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, conv_clamp=None):
    super().__init__()
    self.conv_clamp = conv_clamp
    self.affine = FullyConnectedLayer(w_dim, in_channels)
    self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, 1, 1]))
    self.bias = nn.Parameter(torch.zeros([out_channels]))
    self.weight_gain = 1 / math.sqrt(in_channels)

  def forward(self, x, w):
    styles = self.affine(w) * self.weight_gain
    x = F.conv2d(x * styles[:, :, None, None], self.weight)
    return bias_act(x, self.bias, 'linear', clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
               architecture='skip', conv_clamp=None):
    super().__init__()
    self.in_channels, self.architecture = in_channels, architecture
    self.register_buffer('resample_filter', _filter_buffer())
    if in_channels == 0:
      self.const = nn.Parameter(torch.zeros([out_channels, resolution, resolution]))
    else:
      self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                  conv_clamp=conv_clamp)
    self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                conv_clamp=conv_clamp)
    self.num_conv = 1 if in_channels == 0 else 2
    self.num_torgb = 1 if (is_last or architecture == 'skip') else 0
    if self.num_torgb:
      self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
    if in_channels and architecture == 'resnet':
      self.skip = Conv2dLayer(in_channels, out_channels, 1, up=2, bias=False)

  def forward(self, x, img, ws, noise_mode='const'):
    w_iter = iter(ws.unbind(dim=1))
    if self.in_channels == 0:
      x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
      x = self.conv1(x, next(w_iter), noise_mode)
    elif self.architecture == 'resnet':
      y = self.skip(x, gain=np.sqrt(0.5))
      x = self.conv0(x, next(w_iter), noise_mode)
      x = y + self.conv1(x, next(w_iter), noise_mode, gain=np.sqrt(0.5))
    else:
      x = self.conv0(x, next(w_iter), noise_mode)
      x = self.conv1(x, next(w_iter), noise_mode)
    if img is not None:
      img = upfirdn2d(img, self.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4)
    if self.num_torgb:
      y = self.torgb(x, next(w_iter))
      img = img + y if img is not None else y
    return x, img


class SynthesisNetwork(nn.Module):
  def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
               num_fp16_res=0, conv_clamp=None, architecture='skip', **unused):
    super().__init__()
    del num_fp16_res, unused   # Always float32 here; channels_last etc. do not change the math.
    log2 = int(np.log2(img_resolution))
    self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
    channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
    self.num_ws = 0
    for res in self.block_resolutions:
      block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res,
                             img_channels, res == img_resolution, architecture, conv_clamp)
      self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
      setattr(self, f'b{res}', block)

  def forward(self, ws, noise_mode='const'):
    x = img = None
    w_idx = 0
    for res in self.block_resolutions:
      block = getattr(self, f'b{res}')
      x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode)
      w_idx += block.num_conv
    return img


class TorchGenerator(nn.Module):
  """G(z, c) -> NCHW float32 images, built from the reference's `Generator` kwargs."""

  def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None,
               synthesis_kwargs=None):
    super().__init__()
    self.z_dim, self.c_dim = z_dim, c_dim
    self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels,
                                      **(synthesis_kwargs or {}))
    self.num_ws = self.synthesis.num_ws
    self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

  @torch.no_grad()
  def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode='const'):
    if noise_mode not in ('const', 'random', 'none'):
      raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}.")
    ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
    return self.synthesis(ws, noise_mode)


def load_exported_generator(path, which: str = 'G_ema') -> TorchGenerator:
  """A TorchGenerator with the `which` weights ('G' or 'G_ema') of a `dgan_jax.export` file."""
  data = torch.load(path, map_location='cpu', weights_only=True)
  if which not in data or 'G_kwargs' not in data:
    raise ValueError(f'{path} has no {which!r} / G_kwargs entry; is it a dgan_jax export '
                     f'(python -m dgan_jax.export --format=torch)? Keys: {sorted(data)}.')
  g = TorchGenerator(**data['G_kwargs'])
  g.load_state_dict(data[which], strict=True)
  return g.eval()
