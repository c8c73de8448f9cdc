"""The TF1 legacy bilinear resize that the reference FID pipeline uses before Inception.

NVIDIA's `inception-2015-12-05.pt` (and `vgg16.pt`) resize with `affine_grid` + `grid_sample`
(bilinear, border padding, align_corners=False) with the translation shifted so that the source
coordinate of output pixel d is `d * in / out`, i.e. TensorFlow 1's `resize_bilinear` with
align_corners=False and half_pixel_centers=False. That is *not* `jax.image.resize` (half-pixel
centres), PIL or `F.interpolate`, and for 32 -> 299 upsampling the difference moves FID.

The resize is separable, so it is written as two small interpolation matrices (two non-zeros per
row) applied with einsum: exact, static-shaped and fast on every backend.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] float32 weights of the TF1 legacy bilinear resize along one axis.

  Output index d samples the source at s = d * in / out (no half-pixel offset); the two taps are
  floor(s) and floor(s) + 1 clamped to the edge, weighted by 1 - frac and frac.
  """
  if in_size < 1 or out_size < 1:
    raise ValueError(f'resize sizes must be positive, got in={in_size}, out={out_size}')
  scale = np.float32(in_size) / np.float32(out_size)
  src = np.arange(out_size, dtype=np.float32) * scale
  lo = np.floor(src).astype(np.int64)
  frac = src - lo.astype(np.float32)
  lo = np.minimum(lo, in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  mat = np.zeros((out_size, in_size), np.float32)
  rows = np.arange(out_size)
  np.add.at(mat, (rows, lo), 1.0 - frac)
  np.add.at(mat, (rows, hi), frac)
  return mat


def resize_bilinear_tf1(images: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """Resizes float NHWC `images` to `out_hw` like `tf.compat.v1.image.resize_bilinear`.

  Computed in float32 at full matmul precision (TF32/bf16 passes would move pixel values by ~0.1).
  """
  if images.ndim != 4:
    raise ValueError(f'expected NHWC images, got shape {images.shape}')
  _, h, w, _ = images.shape
  out_h, out_w = out_hw
  if (h, w) == (out_h, out_w):
    return images.astype(jnp.float32)
  rows = jnp.asarray(interpolation_matrix(h, out_h))
  cols = jnp.asarray(interpolation_matrix(w, out_w))
  x = images.astype(jnp.float32)
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,nhwc->nowc', rows, x, precision=hp)
  return jnp.einsum('pw,nowc->nopc', cols, x, precision=hp)
