"""Bilinear grid sampling in JAX with the conventions of torch's `affine_grid` / `grid_sample`.

The ADA pipeline resamples its images through `affine_grid(theta, align_corners=False)` and
`grid_sample(mode='bilinear', padding_mode='zeros', align_corners=False)` (reference
`torch_utils/ops/grid_sample_gradfix.py` fixes exactly these settings). These two functions follow
that convention on NHWC arrays: normalized coordinates in [-1, 1] refer to the outer edges of the
border pixels, and samples outside the image read zeros. Both are differentiable (the gather's
transpose is a scatter-add), with respect to the image and to the grid.
"""
import jax
import jax.numpy as jnp


def affine_grid(theta: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Sampling grid `[N, H, W, 2]` (x, y) of the affine maps `theta` `[N, 2, 3]` for an output `size` (H, W).

  Output pixel (i, j) sits at the normalized position ((2j + 1) / W - 1, (2i + 1) / H - 1), the
  pixel centres of `align_corners=False`; the grid is `theta @ (x, y, 1)`.
  """
  height, width = size
  theta = jnp.asarray(theta, jnp.float32)
  xs = (2.0 * jnp.arange(width, dtype=jnp.float32) + 1.0) / width - 1.0
  ys = (2.0 * jnp.arange(height, dtype=jnp.float32) + 1.0) / height - 1.0
  x, y = xs[None, None, :], ys[None, :, None]
  # Elementwise products, not a matmul: exact float32 on every backend (no TF32 passes).
  t = theta[:, :, :, None, None]
  gx = t[:, 0, 0] * x + t[:, 0, 1] * y + t[:, 0, 2]
  gy = t[:, 1, 0] * x + t[:, 1, 1] * y + t[:, 1, 2]
  return jnp.stack([gx, gy], axis=-1)


def grid_sample(images: jax.Array, grid: jax.Array) -> jax.Array:
  """Bilinear samples of NHWC `images` at the normalized (x, y) positions `grid` `[N, Ho, Wo, 2]`.

  Matches `torch.nn.functional.grid_sample(mode='bilinear', padding_mode='zeros',
  align_corners=False)`: x = -1 is the left edge of pixel 0, x = 1 the right edge of pixel W - 1;
  neighbours outside the image contribute zero. Returns `[N, Ho, Wo, C]` in the images' dtype.
  """
  if images.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != images.shape[0]:
    raise ValueError(f'grid_sample expects images [N, H, W, C] and grid [N, Ho, Wo, 2] with the same N; '
                     f'got {images.shape} and {grid.shape}.')
  n, height, width, channels = images.shape
  grid = grid.astype(jnp.float32)
  ix = ((grid[..., 0] + 1.0) * width - 1.0) / 2.0    # pixel coordinates, centre of pixel 0 at 0
  iy = ((grid[..., 1] + 1.0) * height - 1.0) / 2.0
  x0 = jnp.floor(ix)
  y0 = jnp.floor(iy)
  wx1 = ix - x0
  wy1 = iy - y0
  flat = images.astype(jnp.float32).reshape(n, height * width, channels)
  out = None
  for dy, wy in ((0, 1.0 - wy1), (1, wy1)):
    for dx, wx in ((0, 1.0 - wx1), (1, wx1)):
      xi = x0 + dx
      yi = y0 + dy
      inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
      index = (jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)).astype(jnp.int32)
      taps = jnp.take_along_axis(flat, index.reshape(n, -1, 1), axis=1).reshape(index.shape + (channels,))
      term = taps * jnp.where(inside, wx * wy, 0.0)[..., None]
      out = term if out is None else out + term
  return out.astype(images.dtype)
