"""Images from a trained (or imported) run: `python -m dgan_jax.main --mode=generate`.

  python -m dgan_jax.main --mode=generate --workdir=runs/x --seeds=0-63 --trunc=1.0 \
      --noise_mode=const [--class_idx=3] [--outdir=out]

Writes `seedNNNN.png` per seed with the reference's rule (`z = RandomState(seed).randn(1, z_dim)`,
G_ema, PNG = clip(img * 127.5 + 128, 0, 255) as uint8), `grid.png` of all seeds, and an
interpolation between consecutive seeds (linear in W): `interpolation.png` (one row per pair) and
the looping animation `interpolation.gif`. Random noise (`--noise_mode=random`) is drawn per seed
from `fold_in(key(0), seed)`, so an image does not depend on which other seeds are generated.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from dgan_jax import errors, families, grids, paths, run_dir

NOISE_MODES = ('const', 'random', 'none')


def parse_seeds(text: str) -> list[int]:
  """'0-63' / '1,5,10-12' -> seeds (ranges inclusive, as the reference's num_range)."""
  seeds = []
  for part in str(text).split(','):
    bounds = part.strip().split('-')
    if len(bounds) > 2 or not all(b.strip().isdigit() for b in bounds) or (
        len(bounds) == 2 and int(bounds[1]) < int(bounds[0])):
      raise errors.UserError(f'--seeds={text!r}: expected comma-separated seeds or ranges like '
                       '"0-63" or "1,5,10-12".')
    seeds.extend(range(int(bounds[0]), int(bounds[-1]) + 1))
  if any(s < 0 or s >= 2**32 for s in seeds):
    raise errors.UserError(f'--seeds={text!r}: seeds must be in [0, 2**32) (numpy RandomState).')
  return seeds


def seed_latents(seeds, z_dim: int) -> np.ndarray:
  """[N, z_dim] float32 latents, row i = np.random.RandomState(seeds[i]).randn(1, z_dim)."""
  return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(
      np.float32)


def class_labels(n: int, c_dim: int, class_idx: int | None) -> np.ndarray:
  """[n, c_dim] one-hot labels for a conditional model (checks class_idx against c_dim)."""
  if c_dim == 0:
    if class_idx is not None:
      raise errors.UserError(f'--class_idx={class_idx} was given, but the model is unconditional; '
                       'drop --class_idx.')
    return np.zeros((n, 0), np.float32)
  if class_idx is None or not 0 <= class_idx < c_dim:
    raise errors.UserError(f'The model is conditional with {c_dim} classes: pass --class_idx in '
                     f'[0, {c_dim - 1}] (got {class_idx}).')
  labels = np.zeros((n, c_dim), np.float32)
  labels[:, class_idx] = 1
  return labels


def _noise_key(seed):
  return jax.random.fold_in(jax.random.key(0), seed)


class ImageMaker:
  """Jitted G_ema calls in fixed-size chunks (no recompiles), images as uint8 NHWC.

  StyleGAN2 generators (`nets.has_buffers`) take the truncation and noise mode and interpolate in
  W; the others (FastGAN, DCGAN, SNGAN) are called through `Networks.generate` in evaluation mode
  and interpolate in z."""

  def __init__(self, nets, state, trunc: float = 1.0, noise_mode: str = 'const',
               chunk: int = 16):
    if noise_mode not in NOISE_MODES:
      raise errors.UserError(f'--noise_mode={noise_mode!r} is unknown; use one of {NOISE_MODES}.')
    self.chunk = chunk
    self.w_space = nets.has_buffers
    if not self.w_space and trunc != 1.0:
      raise errors.UserError(f'--trunc={trunc}: this generator has no W space to truncate in; '
                             'use --trunc=1.')
    G = nets.G
    if self.w_space:
      self.variables = {'params': state.g_ema_params, 'buffers': state.g_buffers}

      def image(variables, z, c, seed):
        return G.apply(variables, z[None], c[None], truncation_psi=trunc, noise_mode=noise_mode,
                       rngs={'noise': _noise_key(seed)})[0]

      def synthesis(variables, w, c, seed):
        del c
        return G.apply(variables, w[None], noise_mode=noise_mode,
                       rngs={'noise': _noise_key(seed)}, method='synthesis')[0]
      self._map = jax.jit(lambda v, z, c: G.apply(v, z, c, truncation_psi=trunc,
                                                  method='mapping'))
    else:
      self.variables = (state.g_ema_params, state.g_buffers)

      def image(variables, z, c, seed):
        return nets.generate(*variables, z[None], c[None], _noise_key(seed))[0][0]
      synthesis = image
      self._map = jax.jit(lambda v, z, c: z)
    self._images = jax.jit(jax.vmap(image, in_axes=(None, 0, 0, 0)))
    self._synth = jax.jit(jax.vmap(synthesis, in_axes=(None, 0, 0, 0)))

  def _chunked(self, fn, arrays, seeds):
    n = len(seeds)
    out = []
    for start in range(0, n, self.chunk):
      idx = np.arange(start, start + self.chunk).clip(max=n - 1)   # pad with the last item
      batch = [jnp.asarray(a[idx]) for a in arrays]
      out.append(np.asarray(grids.to_uint8(fn(self.variables, *batch,
                                              jnp.asarray(np.asarray(seeds)[idx], jnp.uint32)))))
    return np.concatenate(out)[:n]

  def images(self, z: np.ndarray, c: np.ndarray, seeds) -> np.ndarray:
    return self._chunked(self._images, (z, c), seeds)

  def ws(self, z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The latents interpolation runs in: W for StyleGAN2 generators, else z itself."""
    return np.asarray(self._map(self.variables, jnp.asarray(z), jnp.asarray(c)))

  def synthesize(self, ws: np.ndarray, c: np.ndarray, seeds) -> np.ndarray:
    return self._chunked(self._synth, (ws, c), seeds)


def interpolation(maker: ImageMaker, z, c, seeds, steps: int = 8, max_seeds: int = 8):
  """Frames [pairs, steps, H, W, C] going linearly in W (z without a W space) from each seed
  to the next (looping)."""
  k = min(len(seeds), max_seeds)
  if k < 2:
    return None
  ws = maker.ws(z[:k], c[:k])
  t = (np.arange(steps, dtype=np.float32) / steps).reshape((steps,) + (1,) * (ws.ndim - 1))
  frames_w = [ws[i][None] + t * (ws[(i + 1) % k] - ws[i])[None] for i in range(k)]
  frame_seeds = np.repeat(np.asarray(seeds[:k]), steps)   # the noise of the start seed
  frame_c = np.repeat(np.asarray(c[:k]), steps, axis=0)   # the label of the start seed
  frames = maker.synthesize(np.concatenate(frames_w), frame_c, frame_seeds)
  return frames.reshape((k, steps) + frames.shape[1:])


def _save(path: paths.PathLike, image: np.ndarray) -> None:
  with paths.path(path).open('wb') as f:   # local or gs://
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format='PNG')


def run(workdir, seeds='0-63', trunc: float = 1.0, noise_mode: str = 'const',
        class_idx: int | None = None, outdir=None,
        config: ml_collections.ConfigDict | None = None, interp_steps: int = 8,
        step: int | None = None) -> dict:
  """Generates every output for a run's checkpoint; returns {'seeds': [...], 'grid': path, ...}.

  `config` (a --config given on the command line) must define the run's networks; when given,
  its non-network settings (e.g. model.mixed_precision) are used.
  """
  seeds = parse_seeds(seeds) if isinstance(seeds, str) else list(seeds)
  if not seeds:
    raise errors.UserError('--seeds selects no seed.')
  if noise_mode not in NOISE_MODES:
    raise errors.UserError(f'--noise_mode={noise_mode!r} is unknown; use one of {NOISE_MODES}.')
  saved = run_dir.load_config(workdir, step, expected=config)
  if not isinstance(families.get(saved), families.ImageFamily):
    raise errors.UserError(f'{workdir} is a {families.family_name(saved)!r} run; generate needs an '
                           'image run.')
  if config is not None:
    config = ml_collections.ConfigDict(config.to_dict())
    config.model.c_dim = saved.model.c_dim
  config = config or saved
  nets, state = run_dir.restore_state(workdir, config, step)
  c = class_labels(len(seeds), nets.c_dim, class_idx)
  z = seed_latents(seeds, nets.z_dim)
  outdir = paths.path(outdir or paths.path(workdir) / 'generate')
  outdir.mkdir(parents=True, exist_ok=True)
  maker = ImageMaker(nets, state, trunc, noise_mode)
  images = maker.images(z, c, seeds)
  written = {'seeds': []}
  for seed, image in zip(seeds, images):
    written['seeds'].append(outdir / f'seed{seed:04d}.png')
    _save(written['seeds'][-1], image)
  written['grid'] = outdir / 'grid.png'
  _save(written['grid'], grids.tile(images, math.ceil(math.sqrt(len(images)))))
  frames = interpolation(maker, z, c, seeds, interp_steps) if interp_steps > 0 else None
  if frames is not None:
    written['interpolation'] = outdir / 'interpolation.png'
    _save(written['interpolation'], grids.tile(frames.reshape((-1,) + frames.shape[2:]),
                                             frames.shape[1]))
    written['animation'] = outdir / 'interpolation.gif'
    gif = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f)
           for f in frames.reshape((-1,) + frames.shape[2:])]
    with written['animation'].open('wb') as f:
      gif[0].save(f, format='GIF', save_all=True, append_images=gif[1:], duration=80, loop=0)
  return written
