"""FIR resampling (upfirdn2d) and resampling convolutions in JAX, NHWC.

Semantics follow the reference `torch_utils/ops/upfirdn2d.py` and `conv2d_resample.py`:
zero-stuffing upsampling, padding (negative = crop), FIR filtering as a true convolution
(the filter is flipped unless `flip_filter`), then decimation. Padding lists are
`[x_before, x_after, y_before, y_after]` like the reference, so constants carry over verbatim.
"""
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> np.ndarray:
  """The 2-D FIR filter of the reference: outer product of `taps`, normalised to sum 1.

  Returned as float32 numpy [fh, fw]; it is a constant, never a parameter (the exporter
  regenerates the reference's `resample_filter` buffers from it).
  """
  f = np.asarray(taps, dtype=np.float32)
  if f.ndim == 1:
    f = np.outer(f, f)
  if f.ndim != 2 or f.size == 0:
    raise ValueError(f'FIR taps must be a non-empty 1-D or 2-D list, got shape {f.shape}.')
  return (f / f.sum()).astype(np.float32)


def _parse_padding(padding) -> tuple[int, int, int, int]:
  if isinstance(padding, int):
    return padding, padding, padding, padding
  padding = tuple(int(p) for p in padding)
  if len(padding) == 2:
    px, py = padding
    return px, px, py, py
  if len(padding) == 4:
    return padding
  raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1]; got {padding}.')


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=0, gain: float = 1.0,
              flip_filter: bool = False):
  """Upsample (zero insertion), pad, FIR-filter and downsample an NHWC batch.

  Args:
    x: [N, H, W, C] array.
    f: 2-D filter [fh, fw] (numpy or jnp), or None for identity.
    up, down: integer factors.
    padding: int, [x, y] or [x0, x1, y0, y1] in pixels of the upsampled image; negative crops.
    gain: overall signal gain; the 2-D filter is multiplied by `gain`.
    flip_filter: False = convolution with f (reference default), True = correlation.
  """
  if x.ndim != 4:
    raise ValueError(f'upfirdn2d expects NHWC input of rank 4, got shape {x.shape}.')
  if up < 1 or down < 1:
    raise ValueError(f'up and down must be >= 1, got up={up}, down={down}.')
  px0, px1, py0, py1 = _parse_padding(padding)
  if f is None:
    f = np.ones([1, 1], np.float32)
  f = jnp.asarray(f, jnp.float32) * gain
  if f.ndim != 2:
    raise ValueError(f'upfirdn2d needs a 2-D filter, got shape {f.shape}; use setup_filter().')
  # Zero insertion leaves up-1 zeros after every sample (also after the last), then pad/crop.
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(x, zero, [(0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1),
                        (0, 0, 0)])
  if not flip_filter:
    f = f[::-1, ::-1]
  channels = x.shape[-1]
  kernel = jnp.tile(f[:, :, None, None], (1, 1, 1, channels)).astype(x.dtype)
  x = lax.conv_general_dilated(x, kernel, (1, 1), 'VALID', dimension_numbers=_NHWC,
                               feature_group_count=channels)
  return x[:, ::down, ::down, :]


def upsample2d(x, f, up: int = 2):
  """Upsample by `up` with the FIR filter, keeping the signal magnitude (gain up**2)."""
  fh, fw = np.shape(f)
  padding = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
  return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def downsample2d(x, f, down: int = 2):
  """Low-pass filter with f, then keep every `down`-th pixel."""
  fh, fw = np.shape(f)
  padding = [(fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2]
  return upfirdn2d(x, f, down=down, padding=padding)


def _conv(x, w, stride=1, padding=((0, 0), (0, 0)), lhs_dilation=(1, 1)):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, lhs_dilation=lhs_dilation,
                                  dimension_numbers=_NHWC)


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding: int = 0,
                    flip_weight: bool = True):
  """2-D convolution with optional FIR up/downsampling (reference `conv2d_resample`).

  Args:
    x: [N, H, W, I]; w: [kh, kw, I, O] (same dtype as x).
    f: 2-D FIR filter for resampling (setup_filter()).
    up, down: 1 or an integer factor (not both > 1).
    padding: symmetric padding with respect to the upsampled image.
    flip_weight: True = correlation (like torch conv2d), False = true convolution. The
      reference uses False for its upsampling layers; the weight layout stays the same.
  """
  if up > 1 and down > 1:
    raise ValueError('conv2d_resample supports up or down, not both.')
  kh, kw = w.shape[0], w.shape[1]
  if not flip_weight:
    w = w[::-1, ::-1]
  px0 = px1 = py0 = py1 = padding
  if up > 1 or down > 1:
    if f is None:
      raise ValueError('resampling needs a FIR filter f (setup_filter()).')
    fh, fw = np.shape(f)
  if up > 1:
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
  if down > 1:
    px0 += (fw - down + 1) // 2
    px1 += (fw - down) // 2
    py0 += (fh - down + 1) // 2
    py1 += (fh - down) // 2

  if kh == 1 and kw == 1 and down > 1:
    x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
    return _conv(x, w)
  if kh == 1 and kw == 1 and up > 1:
    x = _conv(x, w)
    return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up)
  if down > 1:
    x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
    return _conv(x, w, stride=down)
  if up > 1:
    # The reference's transposed convolution: zero insertion (lhs dilation), then a full
    # correlation with `w` (already flipped above when flip_weight=False, i.e. a true conv).
    x = _conv(x, w, padding=((kh - 1, kh - 1), (kw - 1, kw - 1)),
              lhs_dilation=(up, up))
    return upfirdn2d(x, f, padding=[px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1),
                                    py1 - (kh - up)], gain=up * up)
  return _conv(x, w, padding=((py0, py1), (px0, px1)))
