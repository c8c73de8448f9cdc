"""Calibration of the offline metrics fd10k-clf and kid10k-clf: what a difference of 1 means.

    python benchmarks/calibrate_clf.py [--data=.../cifar10/train.zip] [--test=.../test.zip]
        [--clf=PATH.npz]

The real side is what `fd10k-clf` uses during training: the first 10,000 training images in dataset
order. Each row is a 10,000-image set put in the place of the generated images: other real training
images (four disjoint subsets: the floor an ideal generator reaches, with its spread), the test set,
blurred, noised, mode-dropped (one class removed) and collapsed (100 images repeated) sets. The
test-set row is also computed through `evaluate.evaluate` with a generator that serves the test
images, to show the table's numbers are the metric's. Prints a markdown table (docs/metrics.md).
"""
import argparse
import pathlib
import sys
import time

import jax
import numpy as np
import scipy.ndimage

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from dgan_jax.metrics import classifier, evaluate, formulas  # noqa: E402
from dgan_jax.metrics.extract import FeatureExtractor  # noqa: E402
from dgan_jax.metrics.train_classifier import load_labelled  # noqa: E402

N = 10_000


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
  out = scipy.ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0), mode='reflect')
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def add_noise(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
  noise = np.random.default_rng(seed).normal(0.0, std, images.shape)
  return np.clip(np.rint(images + noise), 0, 255).astype(np.uint8)


def variants(train, labels, test):
  """(name, 10k uint8 images) of every row."""
  pool, pool_labels = train[N:], labels[N:]
  rng = np.random.default_rng(0)
  rows = [(f'real train [{i * N // 1000}k, {(i + 1) * N // 1000}k)', train[i * N:(i + 1) * N])
          for i in range(1, len(train) // N)]
  rows.append(('real test', test[:N]))
  base = train[N:2 * N]
  for sigma in (0.5, 1.0, 2.0):
    rows.append((f'blur sigma {sigma} px', blur(base, sigma)))
  for std in (4, 8, 16, 32):
    rows.append((f'noise std {std}/255', add_noise(base, std)))
  for first_kept, name in ((1, 'class 0 (airplane) removed'), (5, 'classes 0-4 removed')):
    keep = np.flatnonzero(pool_labels >= first_kept)
    rows.append((f'mode-dropped ({name})', pool[np.sort(rng.choice(keep, N, replace=False))]))
  rows.append(('collapsed (100 images x 100)', np.tile(base[:100], (N // 100, 1, 1, 1))))
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', default='/work/shared/data/cifar10/train.zip')
  parser.add_argument('--test', default=None, help='default: test.zip beside --data')
  parser.add_argument('--clf', default=None, help='classifier weights (default: weights folder)')
  args = parser.parse_args(argv)
  test_path = args.test or str(pathlib.Path(args.data).with_name('test.zip'))
  net = classifier.feature_net(args.clf)
  meta = classifier.load(args.clf)[2]
  train, labels = load_labelled(args.data)
  test, _ = load_labelled(test_path)
  extractor = FeatureExtractor(net, batch_size=500)

  def features(images):
    return extractor.run([images], len(images), progress=False)['features']

  start = time.perf_counter()
  real = features(train[:N])
  mu_r, sigma_r = formulas.mean_cov(real)
  rows = []
  for name, images in variants(train, labels, test):
    feats = features(images)
    mu, sigma = formulas.mean_cov(feats)
    rows.append((name, formulas.frechet_distance(mu, sigma, mu_r, sigma_r),
                 formulas.kernel_inception_distance(real, feats)))
  seconds = time.perf_counter() - start

  # The same test-set row through the metric registry (fd10k-clf / kid10k-clf).
  served = iter(np.array_split(test[:N], N // 500))
  via_metric = evaluate.evaluate(
      'fd10k-clf,kid10k-clf', lambda key, n: next(served), lambda: iter([train[:N]]),
      {'clf': net}, key=jax.random.key(0), dataset_id='calibration', resolution=32,
      batch_size=500, progress=False)
  test_row = next(r for r in rows if r[0] == 'real test')

  print(f'classifier {net.name}: test accuracy {meta.get("test_accuracy", float("nan")):.4f}, '
        f'{meta["architecture"]}')
  print(f'real side: first {N} images of {args.data}; features of all sets in {seconds:.0f} s\n')
  print('| set (10,000 images) | fd10k-clf | kid10k-clf x 1e3 |')
  print('|---|---:|---:|')
  for name, fd, kid in rows:
    print(f'| {name} | {fd:.3f} | {kid * 1e3:.3f} |')
  floor = np.array([r[1] for r in rows if r[0].startswith('real train')])
  floor_kid = np.array([r[2] for r in rows if r[0].startswith('real train')]) * 1e3
  print(f'\nreal-train floor: fd {floor.mean():.3f} +- {floor.std(ddof=1):.3f}, '
        f'kid x 1e3 {floor_kid.mean():.3f} +- {floor_kid.std(ddof=1):.3f} (mean +- sd, '
        f'{len(floor)} subsets)')
  print(f'via evaluate(): fd10k-clf {via_metric["fd10k-clf"]:.6f} (table {test_row[1]:.6f}), '
        f'kid10k-clf {via_metric["kid10k-clf"]:.6e} (table {test_row[2]:.6e})')
  return 0


if __name__ == '__main__':
  sys.exit(main())
