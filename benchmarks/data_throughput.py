"""Prints the data pipeline's speed on a stylegan2-ada zip (default: the shared CIFAR-10 copy).

  python benchmarks/data_throughput.py [--path=../shared/data/cifar10/train.zip] [--batch=64]

Figures: time to open and validate the zip, time to decode it fully into memory, batches/s of
the in-memory iterator, and batches/s of the streaming (decode-per-batch) iterator.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs.base import get_base_config  # noqa: E402
from dgan_jax.data import image_folder  # noqa: E402
from dgan_jax.data import pipeline  # noqa: E402


def rate(iterator, steps, batch):
  next(iterator)  # Warm-up: fills the prefetch queue.
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  elapsed = time.perf_counter() - start
  iterator.close()
  return steps / elapsed, steps * batch / elapsed


def main():
  default = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'cifar10', 'train.zip')
  parser = argparse.ArgumentParser()
  parser.add_argument('--path', default=os.path.normpath(default))
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--stream-steps', type=int, default=100)
  args = parser.parse_args()
  print(f'dataset {args.path}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')

  start = time.perf_counter()
  folder = image_folder.ImageFolder(args.path, use_labels=True)
  print(f'open + validate: {time.perf_counter() - start:.2f} s ({folder.num_images} images, '
        f'{folder.image_shape}, c_dim {folder.c_dim})')
  start = time.perf_counter()
  pixels = folder.load_all()
  elapsed = time.perf_counter() - start
  print(f'full decode: {elapsed:.2f} s ({folder.num_images / elapsed:,.0f} images/s, '
        f'{pixels.nbytes / 2**20:.0f} MiB)')

  config = get_base_config().data
  config.path, config.resolution, config.channels = args.path, folder.resolution, folder.channels
  steps_s, images_s = rate(pipeline.make_train_iterator(config, args.batch, 0), args.steps, args.batch)
  print(f'in-memory iterator, batch {args.batch}: {steps_s:,.0f} batches/s ({images_s:,.0f} images/s)')
  pipeline.IN_MEMORY_LIMIT_BYTES = 0
  steps_s, images_s = rate(pipeline.make_train_iterator(config, args.batch, 0), args.stream_steps,
                           args.batch)
  print(f'streaming iterator, batch {args.batch}: {steps_s:,.1f} batches/s ({images_s:,.0f} images/s)')


if __name__ == '__main__':
  main()
