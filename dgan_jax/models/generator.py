"""StyleGAN2 generator (mapping + synthesis) in flax.linen, reference `training/networks.py`.

Parameter paths mirror the reference module names (`mapping/fc0`, `synthesis/b32/conv0/affine`),
non-trainable state lives in the 'buffers' collection (`w_avg`, `noise_const`), random noise uses
the 'noise' RNG stream and style mixing the 'mixing' stream. Images are NHWC float32.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.models import layers
from dgan_jax.models import upfirdn2d as fir
from dgan_jax.models.layers import Conv2dLayer, FullyConnectedLayer

ARCHITECTURES = ('orig', 'skip', 'resnet')
NOISE_MODES = ('random', 'const', 'none')


def check_resolution(resolution: int, what: str = 'img_resolution') -> int:
  """Return log2(resolution); raise if it is not a power of two >= 4."""
  if not isinstance(resolution, (int, np.integer)) or resolution < 4 or (
      resolution & (resolution - 1)):
    raise ValueError(f'{what} must be a power of two >= 4 (4, 8, ..., 1024), got {resolution!r}; '
                     f'resize or pad the dataset to a power-of-two resolution.')
  return int(np.log2(resolution))


def check_architecture(architecture: str) -> None:
  if architecture not in ARCHITECTURES:
    raise ValueError(f'Unknown architecture {architecture!r}; use one of {ARCHITECTURES}.')


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int) -> int:
  """Reference rule: min(channel_base // res, channel_max); must be >= 1."""
  channels = min(channel_base // resolution, channel_max)
  if channels < 1:
    raise ValueError(f'channel_base={channel_base} gives 0 channels at {resolution}x{resolution};'
                     f' channel_base must be >= the image resolution.')
  return channels


def low_precision_resolution(img_resolution: int, num_fp16_res: int) -> int:
  """Smallest resolution whose block runs in reduced precision (reference fp16_resolution)."""
  return max(2 ** (int(np.log2(img_resolution)) + 1 - num_fp16_res), 8)


def synthesis_num_ws(img_resolution: int) -> int:
  """Number of w vectors the synthesis network consumes: 2 per block, minus 1, plus torgb."""
  return 2 * (check_resolution(img_resolution) - 1)


class MappingNetwork(nn.Module):
  """z (and optional label embedding) -> w, with w_avg tracking and truncation.

  num_ws=None returns [N, w_dim] (the discriminator's label/t mapping); otherwise
  [N, num_ws, w_dim]. w_avg_beta=None disables the 'buffers/w_avg' tracking.
  """
  z_dim: int
  c_dim: int
  w_dim: int
  num_ws: Optional[int]
  num_layers: int = 8
  embed_features: Optional[int] = None
  layer_features: Optional[int] = None
  activation: str = 'lrelu'
  lr_multiplier: float = 0.01
  w_avg_beta: Optional[float] = 0.995

  def __post_init__(self):
    if self.z_dim < 0 or self.c_dim < 0 or self.z_dim + self.c_dim == 0:
      raise ValueError(f'MappingNetwork needs z_dim + c_dim > 0, got z_dim={self.z_dim}, '
                       f'c_dim={self.c_dim}.')
    if self.num_layers < 1:
      raise ValueError(f'MappingNetwork needs num_layers >= 1, got {self.num_layers}.')
    super().__post_init__()

  def setup(self):
    embed_features = self.w_dim if self.embed_features is None else self.embed_features
    if self.c_dim == 0:
      embed_features = 0
    layer_features = self.w_dim if self.layer_features is None else self.layer_features
    features = [self.z_dim + embed_features] + [layer_features] * (self.num_layers - 1) + [
        self.w_dim]
    if self.c_dim > 0:
      self.embed = FullyConnectedLayer(self.c_dim, embed_features)
    self.fcs = [FullyConnectedLayer(features[i], features[i + 1], activation=self.activation,
                                    lr_multiplier=self.lr_multiplier, name=f'fc{i}')
                for i in range(self.num_layers)]
    if self.num_ws is not None and self.w_avg_beta is not None:
      self.w_avg = self.variable('buffers', 'w_avg', jnp.zeros, (self.w_dim,), jnp.float32)

  def __call__(self, z, c, truncation_psi=1.0, truncation_cutoff: Optional[int] = None,
               update_w_avg: bool = False):
    parts = []
    if self.z_dim > 0:
      if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
        raise ValueError(f'mapping: z must be [N, {self.z_dim}], got '
                         f'{None if z is None else z.shape}.')
      parts.append(layers.normalize_2nd_moment(z.astype(jnp.float32)))
    if self.c_dim > 0:
      if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
        raise ValueError(f'mapping: c must be [N, {self.c_dim}] float labels, got '
                         f'{None if c is None else c.shape}.')
      parts.append(layers.normalize_2nd_moment(self.embed(c.astype(jnp.float32))))
    x = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    for fc in self.fcs:
      x = fc(x)

    has_w_avg = self.num_ws is not None and self.w_avg_beta is not None
    if update_w_avg and has_w_avg and not self.is_initializing():
      batch_mean = jax.lax.stop_gradient(x).mean(axis=0)
      self.w_avg.value = batch_mean + self.w_avg_beta * (self.w_avg.value - batch_mean)

    if self.num_ws is not None:
      x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, x.shape[1]))

    if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
      if not has_w_avg:
        raise ValueError('Truncation needs w_avg tracking (num_ws and w_avg_beta set).')
      w_avg = self.w_avg.value
      truncated = w_avg + truncation_psi * (x - w_avg)
      if self.num_ws is None or truncation_cutoff is None:
        x = truncated
      else:
        keep = (jnp.arange(self.num_ws) < truncation_cutoff)[None, :, None]
        x = jnp.where(keep, truncated, x)
    return x


class SynthesisLayer(nn.Module):
  """Modulated 3x3 convolution (optionally up=2), per-pixel noise, bias, lrelu, clamp."""
  in_channels: int
  out_channels: int
  w_dim: int
  resolution: int
  kernel_size: int = 3
  up: int = 1
  use_noise: bool = True
  activation: str = 'lrelu'
  conv_clamp: Optional[float] = None

  @nn.compact
  def __call__(self, x, w, noise_mode: str = 'random', gain: float = 1.0):
    in_res = self.resolution // self.up
    if x.shape[1:] != (in_res, in_res, self.in_channels):
      raise ValueError(f'{self.name}: expected input [N, {in_res}, {in_res}, {self.in_channels}]'
                       f', got {tuple(x.shape)}.')
    styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1.0, name='affine')(w)
    k = self.kernel_size
    weight = self.param('weight', nn.initializers.normal(1.0),
                        (k, k, self.in_channels, self.out_channels))
    noise = None
    if self.use_noise:
      noise_const = self.variable(
          'buffers', 'noise_const',
          lambda: jax.random.normal(self.make_rng('params'), (self.resolution, self.resolution)))
      noise_strength = self.param('noise_strength', nn.initializers.zeros, ())
      if noise_mode == 'random':
        noise = jax.random.normal(self.make_rng('noise'),
                                  (x.shape[0], self.resolution, self.resolution, 1))
        noise = noise * noise_strength
      elif noise_mode == 'const':
        noise = (noise_const.value * noise_strength)[None, :, :, None]
    x = layers.modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=k // 2,
                                resample_filter=layers.RESAMPLE_FILTER,
                                flip_weight=(self.up == 1))
    bias = self.param('bias', nn.initializers.zeros, (self.out_channels,))
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return layers.bias_act(x, bias, self.activation, gain=np.sqrt(2.0) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
  """Modulated 1x1 convolution without demodulation, bias, clamp (no activation)."""
  in_channels: int
  out_channels: int
  w_dim: int
  kernel_size: int = 1
  conv_clamp: Optional[float] = None

  @nn.compact
  def __call__(self, x, w):
    k = self.kernel_size
    styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1.0, name='affine')(w)
    styles = styles * (1.0 / np.sqrt(self.in_channels * k * k))
    weight = self.param('weight', nn.initializers.normal(1.0),
                        (k, k, self.in_channels, self.out_channels))
    x = layers.modulated_conv2d(x, weight, styles, demodulate=False)
    bias = self.param('bias', nn.initializers.zeros, (self.out_channels,))
    return layers.bias_act(x, bias, 'linear', clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  """One resolution of the synthesis network ('orig', 'skip' or 'resnet')."""
  in_channels: int            # 0 = first block (learned constant input).
  out_channels: int
  w_dim: int
  resolution: int
  img_channels: int
  is_last: bool
  architecture: str = 'skip'
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32    # Compute dtype of this block.
  use_noise: bool = True

  def __post_init__(self):
    check_architecture(self.architecture)
    super().__post_init__()

  @property
  def num_conv(self) -> int:
    return 1 if self.in_channels == 0 else 2

  @property
  def num_torgb(self) -> int:
    return 1 if (self.is_last or self.architecture == 'skip') else 0

  @nn.compact
  def __call__(self, x, img, ws, noise_mode: str = 'random'):
    n_ws = self.num_conv + self.num_torgb
    if ws.shape[1:] != (n_ws, self.w_dim):
      raise ValueError(f'{self.name}: ws must be [N, {n_ws}, {self.w_dim}], got {ws.shape}.')
    w_iter = iter(ws[:, i] for i in range(n_ws))
    kw = dict(w_dim=self.w_dim, resolution=self.resolution, conv_clamp=self.conv_clamp,
              use_noise=self.use_noise)
    if self.in_channels == 0:
      const = self.param('const', nn.initializers.normal(1.0),
                         (self.resolution, self.resolution, self.out_channels))
      x = jnp.broadcast_to(const.astype(self.dtype)[None], (ws.shape[0],) + const.shape)
      x = SynthesisLayer(self.out_channels, self.out_channels, name='conv1', **kw)(
          x, next(w_iter), noise_mode)
    else:
      x = x.astype(self.dtype)
      conv0 = SynthesisLayer(self.in_channels, self.out_channels, up=2, name='conv0', **kw)
      conv1 = SynthesisLayer(self.out_channels, self.out_channels, name='conv1', **kw)
      if self.architecture == 'resnet':
        skip = Conv2dLayer(self.in_channels, self.out_channels, 1, up=2, use_bias=False,
                           name='skip')
        y = skip(x, gain=np.sqrt(0.5))
        x = conv0(x, next(w_iter), noise_mode)
        x = conv1(x, next(w_iter), noise_mode, gain=np.sqrt(0.5))
        x = y + x
      else:
        x = conv0(x, next(w_iter), noise_mode)
        x = conv1(x, next(w_iter), noise_mode)

    if img is not None:
      img = fir.upsample2d(img, layers.RESAMPLE_FILTER)
    if self.num_torgb:
      y = ToRGBLayer(self.out_channels, self.img_channels, self.w_dim, conv_clamp=self.conv_clamp,
                     name='torgb')(x, next(w_iter))
      y = y.astype(jnp.float32)
      img = img + y if img is not None else y
    return x, img


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> images [N, H, W, C] float32."""
  w_dim: int
  img_resolution: int
  img_channels: int
  channel_base: int = 32768
  channel_max: int = 512
  num_fp16_res: int = 0
  conv_clamp: Optional[float] = None
  architecture: str = 'skip'
  mixed_precision_dtype: Any = jnp.float32   # Dtype of the num_fp16_res highest resolutions.
  use_noise: bool = True

  def __post_init__(self):
    check_resolution(self.img_resolution)
    check_architecture(self.architecture)
    if self.img_channels < 1:
      raise ValueError(f'img_channels must be >= 1, got {self.img_channels}.')
    for res in self.block_resolutions:
      channels_per_resolution(res, self.channel_base, self.channel_max)
    super().__post_init__()

  @property
  def block_resolutions(self) -> list[int]:
    return [2 ** i for i in range(2, int(np.log2(self.img_resolution)) + 1)]

  @property
  def num_ws(self) -> int:
    return synthesis_num_ws(self.img_resolution)

  @nn.compact
  def __call__(self, ws, noise_mode: str = 'random'):
    if noise_mode not in NOISE_MODES:
      raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}.')
    if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
      raise ValueError(f'synthesis: ws must be [N, {self.num_ws}, {self.w_dim}], got {ws.shape}.')
    ws = ws.astype(jnp.float32)
    low_res = low_precision_resolution(self.img_resolution, self.num_fp16_res)
    x = img = None
    w_idx = 0
    for res in self.block_resolutions:
      in_channels = (channels_per_resolution(res // 2, self.channel_base, self.channel_max)
                     if res > 4 else 0)
      block = SynthesisBlock(
          in_channels, channels_per_resolution(res, self.channel_base, self.channel_max),
          w_dim=self.w_dim, resolution=res, img_channels=self.img_channels,
          is_last=(res == self.img_resolution), architecture=self.architecture,
          conv_clamp=self.conv_clamp, use_noise=self.use_noise,
          dtype=self.mixed_precision_dtype if res >= low_res else jnp.float32, name=f'b{res}')
      n = block.num_conv + block.num_torgb
      x, img = block(x, img, ws[:, w_idx:w_idx + n], noise_mode)
      w_idx += block.num_conv
    return img


class Generator(nn.Module):
  """StyleGAN2 generator: G(z, c) -> images [N, H, W, C] float32 in about [-1, 1]."""
  z_dim: int = 512
  c_dim: int = 0
  w_dim: int = 512
  img_resolution: int = 32
  img_channels: int = 3
  mapping_layers: int = 8
  mapping_lr_multiplier: float = 0.01
  w_avg_beta: float = 0.995
  channel_base: int = 32768
  channel_max: int = 512
  num_fp16_res: int = 0
  conv_clamp: Optional[float] = None
  architecture: str = 'skip'
  mixed_precision_dtype: Any = jnp.float32

  def __post_init__(self):
    check_resolution(self.img_resolution)
    check_architecture(self.architecture)
    if self.c_dim < 0:
      raise ValueError(f'c_dim must be >= 0 (0 = unconditional), got {self.c_dim}.')
    if self.img_channels < 1:
      raise ValueError(f'img_channels must be >= 1, got {self.img_channels}.')
    for res in [2 ** i for i in range(2, int(np.log2(self.img_resolution)) + 1)]:
      channels_per_resolution(res, self.channel_base, self.channel_max)
    super().__post_init__()

  @property
  def num_ws(self) -> int:
    return synthesis_num_ws(self.img_resolution)

  def setup(self):
    self.synthesis_network = SynthesisNetwork(
        w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
        channel_base=self.channel_base, channel_max=self.channel_max,
        num_fp16_res=self.num_fp16_res, conv_clamp=self.conv_clamp,
        architecture=self.architecture, mixed_precision_dtype=self.mixed_precision_dtype,
        name='synthesis')
    self.mapping_network = MappingNetwork(
        z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
        num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier,
        w_avg_beta=self.w_avg_beta, name='mapping')

  def mapping(self, z, c, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=False):
    """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim]."""
    return self.mapping_network(z, c, truncation_psi=truncation_psi,
                                truncation_cutoff=truncation_cutoff, update_w_avg=update_w_avg)

  def synthesis(self, ws, noise_mode: str = 'random'):
    """ws [N, num_ws, w_dim] -> images [N, H, W, C] float32."""
    return self.synthesis_network(ws, noise_mode=noise_mode)

  def __call__(self, z, c, *, truncation_psi=1.0, truncation_cutoff=None, noise_mode='random',
               update_w_avg=False, style_mixing_prob=0.0):
    ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_w_avg)
    if style_mixing_prob > 0:
      ws = self.mix_styles(ws, z, c, style_mixing_prob)
    return self.synthesis(ws, noise_mode=noise_mode)

  def mix_styles(self, ws, z, c, style_mixing_prob: float):
    """Reference style mixing: with probability p, ws[:, cutoff:] come from a second z.

    One cutoff ~ U{1, ..., num_ws - 1} per call (per reference GPU batch), from the 'mixing'
    RNG stream; the second mapping does not update w_avg.
    """
    key_cut, key_p, key_z = jax.random.split(self.make_rng('mixing'), 3)
    cutoff = jax.random.randint(key_cut, (), 1, self.num_ws)
    cutoff = jnp.where(jax.random.uniform(key_p, ()) < style_mixing_prob, cutoff, self.num_ws)
    ws2 = self.mapping(jax.random.normal(key_z, z.shape, z.dtype), c)
    mix = (jnp.arange(self.num_ws) >= cutoff)[None, :, None]
    return jnp.where(mix, ws2, ws)


def path_lengths(generator: Generator, variables, ws, pl_noise_key, rngs=None,
                 noise_mode: str = 'random'):
  """Per-sample path lengths for the path-length regularizer (reference `loss.py` Gpl).

  Returns (lengths [N], images): lengths_n = sqrt(mean_w sum_d (d <img_n * u_n> / d ws_n)^2)
  with u ~ N(0, 1) / sqrt(H * W). Differentiable w.r.t. `variables` (the loss needs that).
  """
  def synth(w):
    return generator.apply(variables, w, noise_mode=noise_mode, method='synthesis', rngs=rngs)

  images, vjp = jax.vjp(synth, ws)
  h, w = images.shape[1], images.shape[2]
  pl_noise = jax.random.normal(pl_noise_key, images.shape, images.dtype) / np.sqrt(h * w)
  (grads,) = vjp(pl_noise)
  return jnp.sqrt(jnp.square(grads).sum(axis=2).mean(axis=1)), images
