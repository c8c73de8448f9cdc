"""The stylegan2-ada augmentation pipeline (Karras et al. 2020) as pure, differentiable JAX functions.

Reproduces the reference's `training/adaaug.py` (class `ADA`, used by Diffusion-GAN's `--aug ada`):
pixel blitting (xflip, rotate90, xint), general geometric transforms (scale, rotate, aniso, xfrac)
through filtered resampling, colour transforms (brightness, contrast, lumaflip, hue, saturation),
image-space filtering (imgfilter) and corruptions (noise, cutout). Each operation is applied to a
sample with probability `p * multiplier`; `p` is a traced float, so changing it never recompiles.

The random draws are separate from the transform:

    draws = draw(key, images.shape, p, spec)     # every random value and per-op enable mask
    out = apply(images, draws, spec)             # deterministic, differentiable in `images`
    out = augment(key, images, p, spec)          # both

`draw` takes its uniform / normal numbers in the reference's call order (`raw_layout`), so the
reference's own draws can be replayed through `raw_from_sequence` + `derive` for parity checks.
Images are NHWC float in [-1, 1]; RGB or single-channel for the colour ops. See docs/augment.md.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Sequence, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.augment import filters
from dgan_jax.augment.grid_sample import affine_grid, grid_sample
from dgan_jax.models import upfirdn2d as fir

BLIT_OPS = ('xflip', 'rotate90', 'xint')
GEOM_OPS = ('scale', 'rotate', 'aniso', 'xfrac')
COLOR_OPS = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
OPS = BLIT_OPS + GEOM_OPS + COLOR_OPS + ('imgfilter', 'noise', 'cutout')

# The reference's `augpipe_specs`: the ops whose probability multiplier is 1.
SPECS = {
    'blit': BLIT_OPS,
    'geom': GEOM_OPS,
    'color': COLOR_OPS,
    'filter': ('imgfilter',),
    'noise': ('noise',),
    'cutout': ('cutout',),
    'bg': BLIT_OPS + GEOM_OPS,
    'bgc': BLIT_OPS + GEOM_OPS + COLOR_OPS,
    'bgcf': BLIT_OPS + GEOM_OPS + COLOR_OPS + ('imgfilter',),
    'bgcfn': BLIT_OPS + GEOM_OPS + COLOR_OPS + ('imgfilter', 'noise'),
    'bgcfnc': OPS,
}
DEFAULT_SPEC = 'bgc'
STRENGTHS = ('xint_max', 'scale_std', 'rotate_max', 'aniso_std', 'xfrac_std', 'brightness_std',
             'contrast_std', 'hue_max', 'saturation_std', 'imgfilter_bands', 'imgfilter_std',
             'noise_std', 'cutout_size')


@dataclasses.dataclass(frozen=True)
class AdaSpec:
  """Probability multipliers (0 = op off) and strengths; hashable, so a static jit argument.

  Defaults are the reference `ADA.__init__` defaults (all ops off).
  """
  xflip: float = 0.0
  rotate90: float = 0.0
  xint: float = 0.0
  scale: float = 0.0
  rotate: float = 0.0
  aniso: float = 0.0
  xfrac: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  lumaflip: float = 0.0
  hue: float = 0.0
  saturation: float = 0.0
  imgfilter: float = 0.0
  noise: float = 0.0
  cutout: float = 0.0
  xint_max: float = 0.125          # Range of integer translation, relative to the image size.
  scale_std: float = 0.2           # Log2 std of isotropic scaling.
  rotate_max: float = 1.0          # Range of arbitrary rotation, 1 = full circle.
  aniso_std: float = 0.2           # Log2 std of anisotropic scaling.
  xfrac_std: float = 0.125         # Std of fractional translation, relative to the image size.
  brightness_std: float = 0.2      # Std of the brightness offset.
  contrast_std: float = 0.5        # Log2 std of contrast.
  hue_max: float = 1.0             # Range of hue rotation, 1 = full circle.
  saturation_std: float = 1.0      # Log2 std of saturation.
  imgfilter_bands: tuple = (1.0, 1.0, 1.0, 1.0)  # Probability multipliers of the 4 bands.
  imgfilter_std: float = 1.0       # Log2 std of a band's amplification.
  noise_std: float = 0.1           # Std of additive RGB noise (its sigma is |N(0, 1)| * noise_std).
  cutout_size: float = 0.5         # Side of the cutout square, relative to the image size.

  def __post_init__(self):
    object.__setattr__(self, 'imgfilter_bands', tuple(float(b) for b in self.imgfilter_bands))
    problems = [f'{name}={getattr(self, name)}' for name in OPS + STRENGTHS
                if name != 'imgfilter_bands' and not getattr(self, name) >= 0]
    if len(self.imgfilter_bands) != 4 or min(self.imgfilter_bands) < 0:
      problems.append(f'imgfilter_bands={self.imgfilter_bands} (needs 4 values >= 0)')
    if problems:
      raise ValueError('Bad ADA spec: ' + ', '.join(problems) + ' (multipliers and strengths must '
                       'be >= 0).')

  @classmethod
  def named(cls, name: str, **strengths) -> 'AdaSpec':
    """The reference's named spec (`blit`, ..., `bgc`, ..., `bgcfnc`) with optional strengths."""
    if name not in SPECS:
      raise ValueError(f'Unknown ADA spec {name!r}; use one of {tuple(SPECS)}.')
    unknown = sorted(set(strengths) - set(STRENGTHS))
    if unknown:
      raise ValueError(f'Unknown ADA strength(s) {unknown}; the strengths are {STRENGTHS}.')
    return cls(**{op: 1.0 for op in SPECS[name]}, **strengths)

  def enabled(self, op: str) -> bool:
    return getattr(self, op) > 0


SpecLike = Union[str, AdaSpec]


def resolve_spec(spec: SpecLike) -> AdaSpec:
  if isinstance(spec, AdaSpec):
    return spec
  if isinstance(spec, str):
    return AdaSpec.named(spec)
  raise TypeError(f'spec must be a spec name {tuple(SPECS)} or an AdaSpec, got {type(spec).__name__}.')


@flax.struct.dataclass
class AdaDraws:
  """All random inputs of one `apply`: a pytree whose shapes depend only on the image shape and spec.

  Attributes:
    values: op name -> float32 per-sample parameter, before masking (see `derive` for each meaning):
      xflip, rotate90, lumaflip [N] (integers as floats); xint, xfrac [N, 2] (x, y, relative to the
      image size); scale, aniso, contrast, saturation [N] (factors); rotate_pre, rotate_post, hue [N]
      (radians); brightness [N]; imgfilter [N, 4] (band gains); noise_sigma [N]; noise [N, H, W, C]
      (unit normal field); cutout_center [N, 2] (x, y in [0, 1)).
    masks: op name -> bool per-sample enable mask ([N], imgfilter [N, 4]; rotate_pre / rotate_post
      for the two rotations). A disabled op acts as the identity on that sample.
  """
  values: dict
  masks: dict


# ---------------------------------------------------------------------------------------------------
# Drawing.


def _channels_ok(spec: AdaSpec, channels: int) -> tuple[bool, bool]:
  """(hue, saturation) active: the reference skips both (and their draws) for one channel."""
  return spec.enabled('hue') and channels > 1, spec.enabled('saturation') and channels > 1


def raw_layout(shape: Sequence[int], spec: SpecLike) -> list[tuple[str, str, tuple]]:
  """(name, 'uniform' | 'normal', per-sample shape) of every random draw, in the reference's order.

  One entry per `torch.rand` / `torch.randn` call of the reference's `ADA.forward`; per-sample
  shapes drop its singleton axes, and the noise field is NHWC (the reference draws it NCHW).
  """
  spec = resolve_spec(spec)
  _, height, width, channels = shape
  hue_on, saturation_on = _channels_ok(spec, channels)
  u, z = 'uniform', 'normal'
  pairs = [
      ('xflip', spec.enabled('xflip'), [('xflip', u, ()), ('xflip_enable', u, ())]),
      ('rotate90', spec.enabled('rotate90'), [('rotate90', u, ()), ('rotate90_enable', u, ())]),
      ('xint', spec.enabled('xint'), [('xint', u, (2,)), ('xint_enable', u, ())]),
      ('scale', spec.enabled('scale'), [('scale', z, ()), ('scale_enable', u, ())]),
      ('rotate', spec.enabled('rotate'), [('rotate_pre', u, ()), ('rotate_pre_enable', u, ())]),
      ('aniso', spec.enabled('aniso'), [('aniso', z, ()), ('aniso_enable', u, ())]),
      ('rotate', spec.enabled('rotate'), [('rotate_post', u, ()), ('rotate_post_enable', u, ())]),
      ('xfrac', spec.enabled('xfrac'), [('xfrac', z, (2,)), ('xfrac_enable', u, ())]),
      ('brightness', spec.enabled('brightness'), [('brightness', z, ()), ('brightness_enable', u, ())]),
      ('contrast', spec.enabled('contrast'), [('contrast', z, ()), ('contrast_enable', u, ())]),
      ('lumaflip', spec.enabled('lumaflip'), [('lumaflip', u, ()), ('lumaflip_enable', u, ())]),
      ('hue', hue_on, [('hue', u, ()), ('hue_enable', u, ())]),
      ('saturation', saturation_on, [('saturation', z, ()), ('saturation_enable', u, ())]),
      ('imgfilter', spec.enabled('imgfilter'),
       [e for i in range(4) for e in ((f'imgfilter{i}', z, ()), (f'imgfilter{i}_enable', u, ()))]),
      ('noise', spec.enabled('noise'), [('noise_sigma', z, ()), ('noise_enable', u, ()),
                                        ('noise', z, (height, width, channels))]),
      ('cutout', spec.enabled('cutout'), [('cutout_enable', u, ()), ('cutout_center', u, (2,))]),
  ]
  return [entry for _, on, entries in pairs if on for entry in entries]


def sample_raw(key: jax.Array, shape: Sequence[int], spec: SpecLike) -> dict:
  """Draws every entry of `raw_layout` with JAX: name -> float32 [N, *per-sample shape]."""
  layout = raw_layout(shape, spec)
  keys = jax.random.split(key, max(len(layout), 1))
  n = shape[0]
  raw = {}
  for k, (name, dist, sub) in zip(keys, layout):
    sampler = jax.random.uniform if dist == 'uniform' else jax.random.normal
    raw[name] = sampler(k, (n,) + sub, jnp.float32)
  return raw


def raw_from_sequence(draws: Sequence[Any], shape: Sequence[int], spec: SpecLike) -> dict:
  """Maps a flat list of the reference's random tensors (its call order) onto `sample_raw`'s dict.

  Each element is an array with the reference's shape ([N, ...], NCHW for the noise field); raises
  when the count or a size does not match the layout, i.e. when the call orders differ.
  """
  layout = raw_layout(shape, spec)
  if len(draws) != len(layout):
    raise ValueError(f'Expected {len(layout)} reference draws for this spec, got {len(draws)}.')
  raw = {}
  n = shape[0]
  for value, (name, _, sub) in zip(draws, layout):
    value = np.asarray(value, np.float32)
    if name == 'noise':   # NCHW -> NHWC
      value = value.reshape((n, sub[2], sub[0], sub[1])).transpose(0, 2, 3, 1)
    if value.size != n * math.prod(sub):
      raise ValueError(f'Reference draw for {name!r} has {value.size} values, expected '
                       f'{n * math.prod(sub)}.')
    raw[name] = jnp.asarray(value.reshape((n,) + sub))
  return raw


def derive(raw: Mapping[str, jax.Array], p, spec: SpecLike) -> AdaDraws:
  """Turns raw uniform / normal draws into per-op parameters and enable masks (reference formulas).

  An op is enabled on a sample when its enable draw is below `multiplier * p`; each rotation (pre /
  post anisotropic scaling) uses `1 - sqrt(1 - rotate * p)`, so that either happens with rotate * p.
  """
  spec = resolve_spec(spec)
  p = jnp.asarray(p, jnp.float32)
  values, masks = {}, {}

  def enable(op):
    masks[op] = raw[f'{op}_enable'] < getattr(spec, op) * p

  pi = np.float32(np.pi)
  if 'xflip' in raw:
    values['xflip'] = jnp.floor(raw['xflip'] * 2)
    enable('xflip')
  if 'rotate90' in raw:
    values['rotate90'] = jnp.floor(raw['rotate90'] * 4)
    enable('rotate90')
  if 'xint' in raw:
    values['xint'] = (raw['xint'] * 2 - 1) * spec.xint_max
    enable('xint')
  if 'scale' in raw:
    values['scale'] = jnp.exp2(raw['scale'] * spec.scale_std)
    enable('scale')
  if 'rotate_pre' in raw:
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - spec.rotate * p, 0, 1))
    for name in ('rotate_pre', 'rotate_post'):
      values[name] = (raw[name] * 2 - 1) * pi * spec.rotate_max
      masks[name] = raw[f'{name}_enable'] < p_rot
  if 'aniso' in raw:
    values['aniso'] = jnp.exp2(raw['aniso'] * spec.aniso_std)
    enable('aniso')
  if 'xfrac' in raw:
    values['xfrac'] = raw['xfrac'] * spec.xfrac_std
    enable('xfrac')
  if 'brightness' in raw:
    values['brightness'] = raw['brightness'] * spec.brightness_std
    enable('brightness')
  if 'contrast' in raw:
    values['contrast'] = jnp.exp2(raw['contrast'] * spec.contrast_std)
    enable('contrast')
  if 'lumaflip' in raw:
    values['lumaflip'] = jnp.floor(raw['lumaflip'] * 2)
    enable('lumaflip')
  if 'hue' in raw:
    values['hue'] = (raw['hue'] * 2 - 1) * pi * spec.hue_max
    enable('hue')
  if 'saturation' in raw:
    values['saturation'] = jnp.exp2(raw['saturation'] * spec.saturation_std)
    enable('saturation')
  if 'imgfilter0' in raw:
    values['imgfilter'] = jnp.stack([jnp.exp2(raw[f'imgfilter{i}'] * spec.imgfilter_std)
                                     for i in range(4)], axis=1)
    masks['imgfilter'] = jnp.stack([raw[f'imgfilter{i}_enable'] < spec.imgfilter * p * band
                                    for i, band in enumerate(spec.imgfilter_bands)], axis=1)
  if 'noise' in raw:
    values['noise_sigma'] = jnp.abs(raw['noise_sigma']) * spec.noise_std
    values['noise'] = raw['noise']
    enable('noise')
  if 'cutout_center' in raw:
    values['cutout_center'] = raw['cutout_center']
    enable('cutout')
  return AdaDraws(values=values, masks=masks)


def draw(key: jax.Array, shape: Sequence[int], p, spec: SpecLike = DEFAULT_SPEC) -> AdaDraws:
  """All random values and enable masks for augmenting a batch of NHWC `shape` at probability `p`.

  `shape` is the image batch's shape (the noise field and the one-channel case need more than the
  batch size); `p` may be traced.
  """
  spec = resolve_spec(spec)
  check_shape(shape, spec)
  return derive(sample_raw(key, shape, spec), p, spec)


# ---------------------------------------------------------------------------------------------------
# Homogeneous matrices, batched: entries are python floats or [N] arrays.


def _matrix(rows, n: int) -> jax.Array:
  return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float32), (n,)) for e in row],
                              axis=-1) for row in rows], axis=-2)


def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
  """Batched [..., i, k] @ [..., k, j] as elementwise sums: exact float32 on every backend."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _translate2d(tx, ty, n):
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n)


def _scale2d(sx, sy, n):
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n)


def _rotate2d(theta, n):
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n)


def _translate3d(t, n):
  return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], n)


def _scale3d(s, n):
  return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n)


_LUMA = np.asarray([1, 1, 1, 0], np.float32) / np.float32(np.sqrt(3))   # the luma axis v
_LUMA_OUTER = np.outer(_LUMA, _LUMA).astype(np.float32)


def _rotate3d_luma(theta, n):
  """Rotation by theta around the luma axis (Rodrigues), homogeneous 4x4."""
  v = _LUMA
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix([
      [v[0] * v[0] * cc + c, v[0] * v[1] * cc - v[2] * s, v[0] * v[2] * cc + v[1] * s, 0],
      [v[1] * v[0] * cc + v[2] * s, v[1] * v[1] * cc + c, v[1] * v[2] * cc - v[0] * s, 0],
      [v[2] * v[0] * cc - v[1] * s, v[2] * v[1] * cc + v[0] * s, v[2] * v[2] * cc + c, 0],
      [0, 0, 0, 1]], n)


def _masked(draws: AdaDraws, name: str, identity: float, op: str | None = None) -> jax.Array:
  value = draws.values[name]
  mask = draws.masks[op or name]
  mask = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
  return jnp.where(mask, value, jnp.asarray(identity, value.dtype))


# ---------------------------------------------------------------------------------------------------
# Applying.


def check_shape(shape: Sequence[int], spec: SpecLike) -> None:
  """Raises ValueError (at trace time) for image shapes the spec cannot handle."""
  spec = resolve_spec(spec)
  if len(shape) != 4:
    raise ValueError(f'ADA expects NHWC images of rank 4, got shape {tuple(shape)}.')
  _, height, width, channels = shape
  if any(spec.enabled(op) for op in COLOR_OPS) and channels not in (1, 3):
    raise ValueError(f'ADA colour ops need RGB (3 channels) or L (1 channel) images, got {channels} '
                     'channels; use a spec without colour ops (e.g. bg).')
  pad = filters.band_filter_bank().shape[1] // 2
  if spec.enabled('imgfilter') and min(height, width) <= pad:
    raise ValueError(f'ADA imgfilter pads by reflection with {pad} pixels and needs images larger '
                     f'than {pad} pixels, got {height}x{width}; use a spec without filter (e.g. bgc).')
  if min(height, width) < 2 and any(spec.enabled(op) for op in BLIT_OPS + GEOM_OPS):
    raise ValueError(f'ADA geometric ops need images of at least 2x2 pixels, got {height}x{width}.')


def geometric_matrix(draws: AdaDraws, shape: Sequence[int]) -> jax.Array:
  """G_inv [N, 3, 3]: output pixel -> input pixel, centred pixel coordinates (reference order)."""
  n, height, width, _ = shape
  g = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
  v = draws.values
  if 'xflip' in v:
    g = _matmul(g, _scale2d(1 - 2 * _masked(draws, 'xflip', 0.0), 1.0, n))
  if 'rotate90' in v:
    g = _matmul(g, _rotate2d(np.float32(np.pi / 2) * _masked(draws, 'rotate90', 0.0), n))
  if 'xint' in v:
    t = _masked(draws, 'xint', 0.0)
    g = _matmul(g, _translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height), n))
  if 'scale' in v:
    s = _masked(draws, 'scale', 1.0)
    g = _matmul(g, _scale2d(1 / s, 1 / s, n))
  if 'rotate_pre' in v:
    g = _matmul(g, _rotate2d(_masked(draws, 'rotate_pre', 0.0), n))
  if 'aniso' in v:
    s = _masked(draws, 'aniso', 1.0)
    g = _matmul(g, _scale2d(1 / s, s, n))
  if 'rotate_post' in v:
    g = _matmul(g, _rotate2d(_masked(draws, 'rotate_post', 0.0), n))
  if 'xfrac' in v:
    t = _masked(draws, 'xfrac', 0.0)
    g = _matmul(g, _translate2d(-t[:, 0] * width, -t[:, 1] * height, n))
  return g


def _geometric_margin(g_inv: jax.Array, height: int, width: int) -> jax.Array:
  """int32 (mx0, my0, mx1, my1): the reference's reflection padding for this batch.

  Enough to cover where the output corners land in the input, plus twice the filter pad, clamped
  to [0, size - 1]; the maximum over the batch (the reference pads the whole batch alike).
  """
  pad = filters.geometric_pad()
  cx, cy = (width - 1) / 2, (height - 1) / 2
  corners = jnp.asarray([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], jnp.float32)
  cp = _matmul(g_inv, jnp.broadcast_to(corners, g_inv.shape[:1] + corners.shape))
  xs, ys = cp[:, 0, :], cp[:, 1, :]
  margin = jnp.stack([jnp.max(-xs), jnp.max(-ys), jnp.max(xs), jnp.max(ys)])
  margin = margin + jnp.asarray([2 * pad - cx, 2 * pad - cy] * 2, jnp.float32)
  margin = jnp.clip(margin, 0, jnp.asarray([width - 1, height - 1] * 2, jnp.float32))
  return jnp.ceil(margin).astype(jnp.int32)


@functools.lru_cache(maxsize=None)
def _fir_axis_operator(size: int, up: int, down: int, padding: tuple, gain: float,
                       flip_filter: bool) -> np.ndarray:
  """float32 [out, size]: `fir.upfirdn2d` with the geometric filter along one axis, as a matrix.

  Built by running upfirdn2d on unit impulses (so its semantics stay the one definition); the
  images are then resampled by matmuls, which XLA:CPU runs (and differentiates) much faster than the
  shifted-slice FIR on 3-channel images.
  """
  taps = np.asarray(filters.SYM6, np.float64)
  column = (taps / taps.sum()).astype(np.float32)[:, None]          # [K, 1]: filters along H only
  with jax.ensure_compile_time_eval():
    impulses = jnp.eye(size, dtype=jnp.float32)[:, :, None, None]    # [size (batch), size (H), 1, 1]
    out = fir.upfirdn2d(impulses, column, up=up, down=down, padding=(0, 0) + padding, gain=gain,
                        flip_filter=flip_filter)
    return np.asarray(out[:, :, 0, 0]).T                           # the W axis kept sample 0


@functools.lru_cache(maxsize=None)
def _reflect_operator(size: int, pad: int) -> np.ndarray:
  """float32 [size + 2 pad, size]: reflection padding (no edge repeat, torch 'reflect') as a matrix."""
  source = np.abs(np.arange(size + 2 * pad) - pad)
  source = np.where(source > size - 1, 2 * (size - 1) - source, source)
  return np.eye(size, dtype=np.float32)[source]


def _window(size: int, start, stop) -> jax.Array:
  index = jnp.arange(size)
  return ((index >= start) & (index < stop)).astype(jnp.float32)


def _upsample_operator(size: int, margin0, margin1) -> jax.Array:
  """[2 (3 size - 2), size]: one axis of reflect-pad, zero frame, upsample x2, zero frame.

  The reference pads by a batch-dependent margin (a dynamic shape). Here the axis is padded by the
  largest margin it can have (size - 1) and everything beyond the batch's margin is zeroed, before
  and after the upsampling: the zero-padded frame the reference's upfirdn2d and grid_sample see.
  """
  big = 3 * size - 2
  fh = len(filters.SYM6)
  up = _fir_axis_operator(big, 2, 1, ((fh + 1) // 2, (fh - 2) // 2), 2.0, False)   # upsample2d
  inner = _window(big, size - 1 - margin0, 2 * size - 1 + margin1)
  outer = _window(2 * big, 2 * (size - 1 - margin0), 2 * (2 * size - 1 + margin1))
  padded = inner[:, None] * _reflect_operator(size, size - 1)
  return outer[:, None] * jnp.matmul(up, padded, precision=jax.lax.Precision.HIGHEST)


def _resample_axes(x: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """out[n, o, p, c] = sum_{h, w} rows[o, h] x[n, h, w, c] cols[p, w] (full float32 precision)."""
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,nhwc->nowc', rows, x, precision=hp)
  return jnp.einsum('pw,nowc->nopc', cols, x, precision=hp)


def _geometric_resample(images: jax.Array, g_inv: jax.Array) -> jax.Array:
  """Resamples NHWC images through G_inv: reflect-pad, upsample x2, bilinear sample, downsample x2."""
  n, height, width, _ = images.shape
  pad = filters.geometric_pad()
  fh = len(filters.SYM6)
  mx0, my0, mx1, my1 = _geometric_margin(g_inv, height, width)
  x = _resample_axes(images, _upsample_operator(height, my0, my1),
                     _upsample_operator(width, mx0, mx1))
  big_h, big_w = 3 * height - 2, 3 * width - 2

  # Output pixel -> input pixel in the upsampled domain (centred coordinates, the padded image is
  # centred on the original one), then to the normalized coordinates of affine_grid/grid_sample.
  out_h, out_w = (height + 2 * pad) * 2, (width + 2 * pad) * 2
  g = _matmul(_scale2d(2.0, 2.0, n), _matmul(g_inv, _scale2d(0.5, 0.5, n)))
  g = _matmul(_translate2d(-0.5, -0.5, n), _matmul(g, _translate2d(0.5, 0.5, n)))
  theta = _matmul(_scale2d(2 / (2 * big_w), 2 / (2 * big_h), n),
                  _matmul(g, _scale2d(out_w / 2, out_h / 2, n)))
  x = grid_sample(x, affine_grid(theta[:, :2, :], (out_h, out_w)))
  # Downsample x2 with the same filter (correlation), cropping the 2 * pad border (downsample2d).
  crop = ((fh - 1) // 2 - 2 * pad, (fh - 2) // 2 - 2 * pad)
  rows = _fir_axis_operator(out_h, 1, 2, crop, 1.0, True)
  cols = _fir_axis_operator(out_w, 1, 2, crop, 1.0, True)
  return _resample_axes(x, jnp.asarray(rows), jnp.asarray(cols))


def color_matrix(draws: AdaDraws, n: int) -> jax.Array:
  """C [N, 4, 4]: homogeneous colour transform, colour_out = C @ colour_in (reference order)."""
  c = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (n, 4, 4))
  v = draws.values
  eye = np.eye(4, dtype=np.float32)
  if 'brightness' in v:
    c = _matmul(_translate3d(_masked(draws, 'brightness', 0.0), n), c)
  if 'contrast' in v:
    c = _matmul(_scale3d(_masked(draws, 'contrast', 1.0), n), c)
  if 'lumaflip' in v:
    i = _masked(draws, 'lumaflip', 0.0)
    c = _matmul(eye - 2 * _LUMA_OUTER * i[:, None, None], c)   # Householder reflection
  if 'hue' in v:
    c = _matmul(_rotate3d_luma(_masked(draws, 'hue', 0.0), n), c)
  if 'saturation' in v:
    s = _masked(draws, 'saturation', 1.0)
    # v v^T + (I - v v^T) s, written so that s = 1 gives exactly I.
    c = _matmul(eye + (eye - _LUMA_OUTER) * (s - 1)[:, None, None], c)
  return c


def _apply_color(images: jax.Array, c: jax.Array) -> jax.Array:
  channels = images.shape[-1]
  if channels == 3:
    out = [sum(c[:, i, k, None, None] * images[..., k] for k in range(3)) + c[:, i, 3, None, None]
           for i in range(3)]
    return jnp.stack(out, axis=-1)
  c = jnp.mean(c[:, :3, :], axis=1)   # one channel: the mean of the RGB rows
  return images * jnp.sum(c[:, :3], axis=1)[:, None, None, None] + c[:, 3, None, None, None]


def _band_gains(draws: AdaDraws) -> jax.Array:
  """The imgfilter gain vector g [N, 4]: per band, amplify, renormalise the expected power."""
  t_all = _masked(draws, 'imgfilter', 1.0)
  expected = jnp.asarray(filters.BAND_EXPECTED_POWER, jnp.float32)
  g = jnp.ones_like(t_all)
  for band in range(t_all.shape[1]):
    t = jnp.ones_like(t_all).at[:, band].set(t_all[:, band])
    g = g * (t / jnp.sqrt(jnp.sum(expected * t * t, axis=-1, keepdims=True)))
  return g


def _reflect_filter_matrix(taps: jax.Array, size: int) -> jax.Array:
  """[N, size, size]: per-sample correlation with `taps` [N, K] (K odd) after reflection padding.

  Row i holds the weights of output pixel i over the input pixels, with the reflect padding by
  K // 2 folded in, so the filter is one small matmul per axis (fast to compile, also its gradient).
  """
  k = taps.shape[1]
  pad = k // 2
  offset = np.arange(size + 2 * pad)[None, :] - np.arange(size)[:, None]
  valid = (offset >= 0) & (offset < k)
  banded = jnp.where(valid, taps[:, np.clip(offset, 0, k - 1)], 0.0)   # [N, size, size + 2 * pad]
  return jnp.einsum('nij,js->nis', banded, _reflect_operator(size, pad),
                    precision=jax.lax.Precision.HIGHEST)


def _apply_imgfilter(images: jax.Array, gains: jax.Array) -> jax.Array:
  """Filters each sample with sum_b g_b * band_b along x, then along y (reflection padding)."""
  bank = jnp.asarray(filters.band_filter_bank())
  taps = jnp.sum(gains[:, :, None] * bank[None], axis=1)      # [N, 43], exact float32
  _, height, width, _ = images.shape
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum('nis,nhsc->nhic', _reflect_filter_matrix(taps, width), images, precision=hp)
  return jnp.einsum('nis,nswc->niwc', _reflect_filter_matrix(taps, height), x, precision=hp)


def _apply_cutout(images: jax.Array, draws: AdaDraws, cutout_size: float) -> jax.Array:
  _, height, width, _ = images.shape
  size = jnp.where(draws.masks['cutout'], jnp.float32(cutout_size), 0.0)[:, None, None]
  center = draws.values['cutout_center']
  xs = (jnp.arange(width, dtype=jnp.float32) + 0.5) / width
  ys = (jnp.arange(height, dtype=jnp.float32) + 0.5) / height
  keep_x = jnp.abs(xs[None, None, :] - center[:, 0, None, None]) >= size / 2
  keep_y = jnp.abs(ys[None, :, None] - center[:, 1, None, None]) >= size / 2
  return images * (keep_x | keep_y).astype(images.dtype)[..., None]


def _any_mask(draws: AdaDraws, names) -> jax.Array:
  found = [jnp.any(draws.masks[name]) for name in names if name in draws.masks]
  return jnp.any(jnp.stack(found)) if found else jnp.asarray(False)


def apply(images: jax.Array, draws: AdaDraws, spec: SpecLike = DEFAULT_SPEC) -> jax.Array:
  """Augments NHWC `images` with the given draws (deterministic, differentiable in `images`).

  Stages in the reference's order: geometric (one resampling for all blit and geometric ops),
  colour (one 4x4 matrix), image-space filter, noise, cutout. The resampling and the filter run
  only when some sample of the batch has one of their ops enabled (a `lax.cond`), so `p = 0` costs
  nothing and returns the images exactly.
  """
  spec = resolve_spec(spec)
  check_shape(images.shape, spec)
  dtype = images.dtype
  x = images.astype(jnp.float32)
  n = x.shape[0]
  geometric = [name for name in ('xflip', 'rotate90', 'xint', 'scale', 'rotate_pre', 'aniso',
                                 'rotate_post', 'xfrac') if name in draws.values]
  if geometric:
    g_inv = geometric_matrix(draws, x.shape)
    x = jax.lax.cond(_any_mask(draws, geometric), _geometric_resample, lambda y, _: y, x, g_inv)
  if any(name in draws.values for name in COLOR_OPS):
    x = _apply_color(x, color_matrix(draws, n))
  if 'imgfilter' in draws.values:
    x = jax.lax.cond(_any_mask(draws, ['imgfilter']), _apply_imgfilter, lambda y, _: y, x,
                     _band_gains(draws))
  if 'noise' in draws.values:
    sigma = _masked(draws, 'noise_sigma', 0.0, op='noise')
    x = x + draws.values['noise'] * sigma[:, None, None, None]
  if 'cutout_center' in draws.values:
    x = _apply_cutout(x, draws, spec.cutout_size)
  return x.astype(dtype)


def augment(key: jax.Array, images: jax.Array, p, spec: SpecLike = DEFAULT_SPEC) -> jax.Array:
  """`apply(images, draw(key, images.shape, p, spec), spec)`."""
  return apply(images, draw(key, images.shape, p, spec), spec)
