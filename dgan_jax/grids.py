"""Image grids: the training reals once, and G_ema samples from fixed latents during training."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dgan_jax import paths


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> uint8 as the reference: clip(x * 127.5 + 128, 0, 255), truncated."""
  return np.asarray(jnp.clip(jnp.asarray(images, jnp.float32) * 127.5 + 128, 0, 255)).astype(np.uint8)


def tile(images: np.ndarray, cols: int) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*H, cols*W, C] grid (N padded with black to a full grid)."""
  n, h, w, c = images.shape
  rows = -(-n // cols)
  padded = np.zeros((rows * cols, h, w, c), images.dtype)
  padded[:n] = images
  return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_png(path: paths.PathLike, grid: np.ndarray) -> None:
  with paths.path(path).open('wb') as f:   # local or gs://
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(f, format='PNG')


def grid_size(resolution: int) -> int:
  """Images per side: 8 for <= 128 px, 4 above (the grid stays under ~2k px)."""
  return 8 if resolution <= 128 else 4


class SampleGrid:
  """Writes sample grids (G_ema, fixed z, const noise) into the workdir and TensorBoard.

  Named `fakesKKKKKK.png` by whole kimg as the reference when grids are at least 1 kimg apart,
  else `fakes_stepSSSSSSS.png`, so the grids of a short run never overwrite each other."""

  def __init__(self, config, nets, workdir: paths.PathLike):
    self.nets, self.workdir = nets, paths.path(workdir)
    self.cols = grid_size(config.data.resolution)
    n = self.cols * self.cols
    self.batch_size = config.train.batch_size
    self.by_kimg = config.train.sample_every_kimg >= 1
    key = jax.random.key(config.seed + 123)
    self.z = jax.random.normal(key, (n, nets.z_dim), jnp.float32)
    self.c = jnp.zeros((n, nets.c_dim), jnp.float32)
    if nets.c_dim:   # cycle through the classes row by row
      self.c = jax.nn.one_hot(jnp.arange(n) // self.cols % nets.c_dim, nets.c_dim)
    self._generate = jax.jit(lambda p, b: nets.generate(p, b, self.z, self.c, jax.random.key(0),
                                                        noise_mode='const')[0])

  def save_reals(self, iterator) -> None:
    n = self.cols * self.cols
    images = []
    while sum(len(x) for x in images) < n:
      images.append(next(iterator)['image'])
    save_png(self.workdir / 'reals.png', tile(np.concatenate(images)[:n], self.cols))

  def file_name(self, step: int) -> str:
    if self.by_kimg:
      return f'fakes{step * self.batch_size // 1000:06d}.png'
    return f'fakes_step{step:07d}.png'

  def write(self, state, step: int, writer, is_main: bool) -> np.ndarray:
    images = to_uint8(self._generate(state.g_ema_params, state.g_buffers))
    if is_main:
      grid = tile(images, self.cols)
      save_png(self.workdir / self.file_name(step), grid)
      writer.write_images(step, {'samples/G_ema': grid[None].astype(np.float32) / 255.0})
    return images
