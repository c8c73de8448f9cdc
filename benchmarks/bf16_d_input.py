"""What bfloat16 does to D's input: the rounding of the diffused image against the diffusion noise.

  python benchmarks/bf16_d_input.py [--data=../shared/data/cifar10/train.zip]

For small t the noise sqrt(1 - abar_t) * sigma is tiny (t = 1: 1e-2 * 0.05 = 5e-4), while bfloat16
keeps 8 significant bits (a relative step of 2^-8 near |x| = 1). Prints, per t, the RMS of the
bfloat16 (and float16) rounding of y_t over the RMS of the noise term, with the reference's settings (linear
betas 1e-4..2e-2, T = 1000 for the tables, sigma 0.05). dgan_jax keeps the diffusion and D's image
path (fromrgb) in float32 for this reason (docs/models.md).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dgan_jax import diffusion  # noqa: E402


def images(path: str, n: int = 256) -> np.ndarray:
  if path and os.path.exists(path):
    from dgan_jax.data import image_folder  # pylint: disable=import-outside-toplevel
    folder = image_folder.ImageFolder(path, max_images=n)
    return folder.load_all().astype(np.float32) / 127.5 - 1
  print('(no dataset given: uniform random images in [-1, 1])')
  return np.random.default_rng(0).uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='../shared/data/cifar10/train.zip')
  parser.add_argument('--sigma', type=float, default=0.05)
  args = parser.parse_args()
  x = jnp.asarray(images(args.data))
  sqrt_abar, sqrt_1m = diffusion.schedule('linear', 1e-4, 2e-2, 1000, 1000)
  eps = jax.random.normal(jax.random.key(0), x.shape)
  print(f'{"t":>5} {"noise RMS":>10} {"bf16 rounding RMS":>18} {"rounding / noise":>17} '
        f'{"fp16 rounding / noise":>22}')
  for t in (1, 2, 5, 10, 20, 50, 100):
    noise = sqrt_1m[t] * args.sigma * eps
    y = sqrt_abar[t] * x + noise
    rounding = y.astype(jnp.bfloat16).astype(jnp.float32) - y
    rounding16 = y.astype(jnp.float16).astype(jnp.float32) - y    # the reference's fp16 blocks
    rms = lambda a: float(jnp.sqrt(jnp.mean(jnp.square(a))))
    print(f'{t:5d} {rms(noise):10.2e} {rms(rounding):18.2e} {rms(rounding) / rms(noise):17.2f} '
          f'{rms(rounding16) / rms(noise):22.3f}')


if __name__ == '__main__':
  main()
