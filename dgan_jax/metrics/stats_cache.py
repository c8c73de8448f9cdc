"""Cached statistics of the real data, keyed by (dataset, resolution, count, network).

Two kinds of `.npz` files:
* `...-stats.npz`: `mu`, `sigma` (float64) and `count`: what FID needs. The keys are those of
  pytorch-fid's statistics files, so published statistics (`mu`, `sigma`) load with `load_stats`.
* `...-features.npz`: `features` (float32 [N, D]): what KID and precision/recall need.
The cache folder may be local or in a bucket (gs://; dgan_jax/paths.py).
"""
import os
import re

import numpy as np
from etils import epath

from dgan_jax import paths


def cache_key(dataset: str, resolution: int, count: int | None, net: str) -> str:
  """A file-name-safe key; count None means "all images of the dataset"."""
  if not dataset:
    raise ValueError('a dataset id is needed to cache real statistics (e.g. "cifar10-train")')
  safe = re.sub(r'[^A-Za-z0-9._-]+', '_', f'{dataset}-{resolution}px-'
                f'{"all" if count is None else count}-{net}')
  return safe


def stats_path(cache_dir: str | os.PathLike, key: str) -> epath.Path:
  return paths.path(cache_dir) / f'{key}-stats.npz'


def features_path(cache_dir: str | os.PathLike, key: str) -> epath.Path:
  return paths.path(cache_dir) / f'{key}-features.npz'


def _save(path: epath.Path, **arrays) -> epath.Path:
  """Writes a .npz whole: temp file + rename locally, one object write in a bucket."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if paths.is_remote(path):
    with path.open('wb') as f:
      np.savez(f, **arrays)
    return path
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)
  return path


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, count: int):
  return _save(paths.path(path), mu=np.asarray(mu, np.float64),
               sigma=np.asarray(sigma, np.float64), count=np.int64(count))


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) from a `.npz` with keys mu and sigma (ours or pytorch-fid's)."""
  with paths.path(path).open('rb') as f, np.load(f) as data:
    if 'mu' not in data or 'sigma' not in data:
      raise ValueError(f'{path} has keys {data.files}; a statistics file needs "mu" and "sigma".')
    return data['mu'].astype(np.float64), data['sigma'].astype(np.float64)


def save_features(path: str | os.PathLike, features: np.ndarray):
  return _save(paths.path(path), features=np.asarray(features, np.float32))


def load_features(path: str | os.PathLike) -> np.ndarray:
  with paths.path(path).open('rb') as f, np.load(f) as data:
    return data['features']
