"""Forward and forward+backward time of the augmentations on a batch of images (default: the CPU).

  python benchmarks/augment_cost.py                       # [32, 32, 32, 3], 20 runs each
  python benchmarks/augment_cost.py --batch 64 --resolution 64 --runs 10

Times `ada.augment` (spec bgc at p = 1, the worst case, p = 0.2 and p = 0, where the resampling is
skipped) and `diffaug.augment`, draws included, each jitted with p as a traced argument. Columns:
compile time of the forward, median forward, median forward+backward (gradient with respect to
the images), median R1-style double backward (d/dw |d sum(tanh(w * aug(x))) / dx|^2).
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dgan_jax.augment import ada, diffaug  # noqa: E402


def median_seconds(fn, args, runs):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def measure(aug, images, p, runs):
  """(compile s, forward s, forward+backward s, double backward s) of aug(key, images, p)."""
  key = jax.random.key(0)
  forward = jax.jit(aug)
  start = time.perf_counter()
  forward.lower(key, images, p).compile()
  compile_s = time.perf_counter() - start
  backward = jax.jit(jax.grad(lambda x, k, q: jnp.sum(jnp.square(aug(k, x, q)))))

  def r1(w, x, k, q):
    grad_x = jax.grad(lambda y: jnp.sum(jnp.tanh(w * aug(k, y, q))))(x)
    return jnp.sum(jnp.square(grad_x))

  double = jax.jit(jax.grad(r1))
  return (compile_s, median_seconds(forward, (key, images, p), runs),
          median_seconds(backward, (images, key, p), runs),
          median_seconds(double, (jnp.float32(0.5), images, key, p), runs))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--resolution', type=int, default=32)
  parser.add_argument('--runs', type=int, default=20)
  args = parser.parse_args()
  shape = (args.batch, args.resolution, args.resolution, 3)
  images = jax.random.uniform(jax.random.key(1), shape, jnp.float32, -1, 1)
  cases = [('ada bgc p=1', lambda k, x, p: ada.augment(k, x, p, 'bgc'), 1.0),
           ('ada bgc p=0.2', lambda k, x, p: ada.augment(k, x, p, 'bgc'), 0.2),
           ('ada bgc p=0', lambda k, x, p: ada.augment(k, x, p, 'bgc'), 0.0),
           ('diffaug', lambda k, x, p: diffaug.augment(k, x), 0.0)]
  print(f'backend {jax.default_backend()}, images {list(shape)}, median of {args.runs} runs')
  print(f'{"case":16s} {"compile":>9s} {"forward":>9s} {"fwd+bwd":>9s} {"R1 2nd":>9s}')
  for name, aug, p in cases:
    c, f, b, r = measure(aug, images, jnp.float32(p), args.runs)
    print(f'{name:16s} {c:8.2f}s {f * 1e3:7.2f}ms {b * 1e3:7.2f}ms {r * 1e3:7.2f}ms')


if __name__ == '__main__':
  main()
