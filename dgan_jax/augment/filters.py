"""The two fixed filters of the ADA pipeline (reference `training/adaaug.py`).

- The geometric filter: the low-pass of the Daubechies symlet-6 wavelet, used to upsample x2 before
  the bilinear resampling and to downsample x2 after it (an orthogonal wavelet, so the pair is the
  identity when the transform is).
- The image-space filter bank: 4 frequency bands built from the symlet-2 wavelet, whose per-sample
  gains the `imgfilter` augmentation draws.

The wavelet taps are the constants the reference tabulates (standard values, as in PyWavelets).
"""
import functools

import numpy as np

from dgan_jax.models import upfirdn2d as fir

# Low-pass decomposition taps (reference `wavelets['sym2']`, `wavelets['sym6']`).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

# Expected power of the 4 bands of natural images (1/f spectrum): the imgfilter gains are
# normalised so that this weighted power stays 1.
BAND_EXPECTED_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


@functools.lru_cache(maxsize=1)
def geometric_filter() -> np.ndarray:
  """The 2-D [12, 12] symlet-6 low-pass filter, normalised to sum 1 (setup_filter of the taps)."""
  return fir.setup_filter(SYM6)


def geometric_pad() -> int:
  """The reference's `Hz_pad`: a quarter of the filter length (3 pixels)."""
  return len(SYM6) // 4


def _zero_stuff(taps: np.ndarray) -> np.ndarray:
  """Inserts one zero between consecutive taps (upsampling of the filter by 2)."""
  out = np.zeros(2 * taps.size - 1, taps.dtype)
  out[::2] = taps
  return out


@functools.lru_cache(maxsize=1)
def band_filter_bank(num_bands: int = 4) -> np.ndarray:
  """float32 [num_bands, 43]: one symmetric 1-D filter per frequency band, coarsest band first.

  With lo(z) the symlet-2 low-pass and hi(z) = lo(-z), the bank starts as the unit impulse in
  band 0; each refinement step doubles the length scale of every band (zero-stuffing, then the
  power-complementary low-pass lo(z) lo(1/z) / 2) and puts the high-pass hi(z) hi(1/z) / 2 at the
  centre of the next band. The rows sum to the unit impulse, so unit gains leave an image as is.
  """
  lo = np.asarray(SYM2, np.float64)
  hi = lo * (-1.0) ** np.arange(lo.size)
  lo2 = np.convolve(lo, lo[::-1]) / 2
  hi2 = np.convolve(hi, hi[::-1]) / 2
  rows = [np.ones(1)] + [np.zeros(1) for _ in range(num_bands - 1)]
  for band in range(1, num_bands):
    rows = [np.convolve(_zero_stuff(row), lo2) for row in rows]
    start = (rows[band].size - hi2.size) // 2
    rows[band][start:start + hi2.size] += hi2
  return np.stack(rows).astype(np.float32)
