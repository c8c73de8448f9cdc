"""Metrics of a generator during training and for a saved run (`--mode=eval`).

Wires `dgan_jax.metrics.evaluate` to the train state: G_ema with random latents, labels drawn from the
dataset's label distribution for conditional models (the reference's metric_utils: labels of uniformly
drawn dataset items), `noise_mode='random'`, truncation 1 (the reference's
fid50k_full protocol), real images in dataset order without x-flips.
"""
from __future__ import annotations

import os
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from dgan_jax import errors, paths, run_files, steps
from dgan_jax.networks import Networks


def dataset_id(config: ml_collections.ConfigDict) -> str:
  """The real-statistics cache key of the configured dataset."""
  if config.eval.dataset_id:
    return config.eval.dataset_id
  if config.data.path:
    return pathlib.Path(config.data.path).name.replace('.', '_')
  return config.data.name.replace('/', '_')


def parse_domain_nets(spec: str) -> dict:
  """'name=pkg.mod:factory,...' -> {name: 'pkg.mod:factory'}."""
  nets = {}
  for item in filter(None, (s.strip() for s in spec.split(','))):
    name, sep, path = item.partition('=')
    if not sep or ':' not in path:
      raise errors.UserError(f'config.eval.domain_nets entry {item!r} must look like name=pkg.module:factory.')
    nets[name.strip()] = path.strip()
  return nets


class Evaluator:
  """Computes `config.eval.metrics` for a train state; loads the feature networks once."""

  def __init__(self, config: ml_collections.ConfigDict, nets: Networks, label_dist=None):
    from dgan_jax.metrics import evaluate
    self.config, self.nets = config, nets
    self.names = [n.strip() for n in config.eval.metrics.split(',') if n.strip()]
    for name in self.names:
      evaluate.parse_metric(name)              # Bad names fail here, before any training.
    self.feature_nets = evaluate.feature_nets_for(
        self.names, config.eval.inception_path or None, config.eval.vgg16_path or None,
        parse_domain_nets(config.eval.domain_nets), config.eval.get('clf_path') or None)
    self.primary = self.names[0]
    self.lower_is_better = evaluate.lower_is_better(self.primary)
    draw_labels = steps.label_sampler(nets.c_dim, label_dist)

    @jax.jit
    def generate(g_params, g_buffers, key, z):
      c = draw_labels(jax.random.fold_in(key, 1), z.shape[0])
      images, _ = nets.generate(g_params, g_buffers, z, c, jax.random.fold_in(key, 2))
      return jnp.clip(images * 127.5 + 128, 0, 255).astype(jnp.uint8)
    self._generate = generate

  def __call__(self, state) -> dict:
    from dgan_jax.data import pipeline
    from dgan_jax.metrics import evaluate
    config = self.config

    def generate_fn(key, n):
      z = jax.random.normal(key, (n, self.nets.z_dim), jnp.float32)
      return self._generate(state.g_ema_params, state.g_buffers, key, z)

    def real_images():
      for batch in pipeline.make_eval_iterator(config.data, config.eval.batch_size,
                                               jax.process_index(), jax.process_count()):
        yield batch['image'][batch['valid']]

    cache_dir = os.path.expanduser(config.eval.cache_dir) if config.eval.cache_dir else None
    return evaluate.evaluate(
        self.names, generate_fn, real_images, self.feature_nets,
        key=jax.random.key(config.eval.seed), dataset_id=dataset_id(config),
        resolution=config.data.resolution, channels=config.data.channels, cache_dir=cache_dir,
        batch_size=config.eval.batch_size, progress=jax.process_index() == 0)

  def primary_value(self, results: dict) -> float:
    """The value that decides the best checkpoint (the first metric's first result)."""
    base = self.primary.split('-')[0]
    for key, value in results.items():
      if key.split('-')[0].startswith(base):
        return float(value)
    raise KeyError(self.primary)

  def improves(self, value: float, best: float | None) -> bool:
    if best is None or not np.isfinite(best):
      return bool(np.isfinite(value))
    return value < best if self.lower_is_better else value > best


def training_evaluator(config: ml_collections.ConfigDict, nets: Networks, label_dist=None):
  """The in-loop Evaluator, or None. A metric whose feature-network weights are missing (e.g. the
  FID Inception file on an offline machine) is skipped with a warning naming the file, so a run
  (an imported one, say) trains offline; `--mode=eval` still fails on it. Bad names still fail."""
  from dgan_jax.metrics import evaluate
  names = [n.strip() for n in config.eval.metrics.split(',') if n.strip()]
  for name in names:
    evaluate.parse_metric(name)
  kept = []
  for name in names:
    try:
      evaluate.feature_nets_for([name], config.eval.inception_path or None,
                                config.eval.vgg16_path or None,
                                parse_domain_nets(config.eval.domain_nets),
                                config.eval.get('clf_path') or None)
      kept.append(name)
    except FileNotFoundError as e:
      logging.warning('Metric %s skipped: %s', name, e)
      print(f'WARNING: metric {name} skipped for this run, its weights are missing: {e}',
            flush=True)
  if not kept:
    return None
  config = ml_collections.ConfigDict(config.to_dict())
  config.eval.metrics = ','.join(kept)
  return Evaluator(config, nets, label_dist)


def write_results(workdir: paths.PathLike, step: int, kimg: float, results: dict, writer) -> None:
  """One JSON line per evaluation in `metrics.jsonl` (as the reference's metric-*.jsonl)."""
  writer.write_scalars(step, {f'metrics/{k}': v for k, v in results.items()})
  run_files.append_jsonl(workdir / 'metrics.jsonl',   # A kill can only cut the last line.
                         {'step': step, 'kimg': kimg, 'time': time.time(), 'results': results})
  logging.info('Metrics at step %d: %s', step, results)
  print(f'metrics at kimg {kimg:.1f}: ' + ', '.join(f'{k} {v:.4g}' for k, v in results.items()),
        flush=True)
