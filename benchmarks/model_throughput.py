"""Generator and discriminator throughput for a preset on the current backend.

  python benchmarks/model_throughput.py                       # cifar, batch 64
  python benchmarks/model_throughput.py --preset=stl10 --resolution=64 --batch=32 --iters=5

Prints images/s for jitted G forward (z -> image, random noise) and D forward (image, t ->
logit, called on sub-batches of batch_gpu via vmap as in training), and the model FLOPs per
image from XLA's cost analysis of the compiled programs.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # repo root: configs/

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from configs import base  # noqa: E402
from dgan_jax.models import build_models, presets  # noqa: E402
from dgan_jax.models.discriminator import apply_in_sub_batches  # noqa: E402


def timed(fn, *args, iters: int):
  """Mean seconds per call after one warm-up (compile) call."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(iters):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / iters


def flops_of(fn, *args) -> float:
  cost = fn.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', float('nan')))


def measure(preset: str = 'cifar', resolution: int = 32, batch: int = 64, iters: int = 3,
            mixed_precision: str = 'auto', smoke: bool = False) -> dict:
  """Images/s and GFLOP/image of G and D forward for one preset; prints and returns them.
  `smoke`: the tests' tiny widths (configs/base.apply_smoke), for a quick check of the script."""
  config = base.get_base_config()
  config.data.resolution = resolution
  presets.apply_preset(config, preset)
  if smoke:
    base.apply_smoke(config)
  config.model.mixed_precision = mixed_precision
  g, d = build_models(config)
  batch_gpu = min(config.train.batch_gpu, batch)
  if batch % batch_gpu:
    raise SystemExit(f'--batch must be a multiple of batch_gpu={batch_gpu}')

  n, res = batch, resolution
  z = jax.random.normal(jax.random.key(0), (n, g.z_dim))
  c = jnp.zeros((n, g.c_dim))
  g_vars = jax.jit(g.init)({'params': jax.random.key(1), 'noise': jax.random.key(2)}, z[:2],
                           c[:2])
  img = jnp.zeros((n, res, res, g.img_channels))
  t = jnp.arange(n, dtype=jnp.int32) % 1000
  d_vars = jax.jit(d.init)(jax.random.key(3), img[:batch_gpu], c[:batch_gpu], t[:batch_gpu])

  gen = jax.jit(lambda v, z, c, key: g.apply(v, z, c, rngs={'noise': key}))

  disc = jax.jit(lambda v, img, c, t: apply_in_sub_batches(d, v, img, c, t, batch_gpu))

  key = jax.random.key(4)
  g_flops = flops_of(gen, g_vars, z, c, key) / n
  d_flops = flops_of(disc, d_vars, img, c, t) / n
  g_sec = timed(gen, g_vars, z, c, key, iters=iters)
  d_sec = timed(disc, d_vars, img, c, t, iters=iters)
  dtype = jnp.dtype(g.mixed_precision_dtype).name
  print(f'backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), preset '
        f'{preset} {res}x{res}, batch {n}, compute dtype {dtype}')
  print(f'G forward: {n / g_sec:.1f} images/s  ({g_flops / 1e9:.3f} GFLOP/image)')
  print(f'D forward: {n / d_sec:.1f} images/s  ({d_flops / 1e9:.3f} GFLOP/image)')
  return {'preset': preset, 'resolution': res, 'batch': n, 'compute_dtype': dtype,
          'g_images_per_s': n / g_sec, 'd_images_per_s': n / d_sec,
          'g_gflop_per_image': g_flops / 1e9, 'd_gflop_per_image': d_flops / 1e9}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--preset', default='cifar')
  parser.add_argument('--resolution', type=int, default=32)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--iters', type=int, default=3)
  parser.add_argument('--mixed_precision', default='auto')
  args = parser.parse_args()
  measure(args.preset, args.resolution, args.batch, args.iters, args.mixed_precision)


if __name__ == '__main__':
  main()
