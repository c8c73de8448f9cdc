"""The training loop: setup, state (fresh or resumed), data, compiled steps, loop, final report.

`train_and_evaluate(config, workdir)` is what `python -m dgan_jax.main` runs. Resuming is automatic:
if `<workdir>/checkpoints` holds a checkpoint, training continues from it with the same randomness
(every draw of step k derives from `fold_in(key, k)`) and the same data order.
"""
from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from jax.sharding import NamedSharding, PartitionSpec as P

from dgan_jax import checkpoint, config_checks, diffusion, evaluation, grids, plots, steps
from dgan_jax import divergence, errors, interrupts, run_files, run_guard  # [reliability]
from dgan_jax.data.device import prefetch_to_mesh
from dgan_jax.networks import Networks, build_networks
from dgan_jax.train_state import TrainState, lazy_adam


# ---------------------------------------------------------------------------------------------------
# State.


def make_optimizers(config: ml_collections.ConfigDict):
  o, loss = config.optim, config.loss
  g_tx = lazy_adam(o.g_lr, o.b1, o.b2, o.eps, loss.pl_interval)
  d_tx = lazy_adam(o.d_lr, o.b1, o.b2, o.eps, loss.r1_interval)
  return g_tx, d_tx


def create_train_state(config: ml_collections.ConfigDict, nets: Networks, g_tx, d_tx) -> TrainState:
  """A fresh state from `config.seed` (pure: the same seed gives the same state everywhere)."""
  key = jax.random.key(config.seed)
  init_key, ctrl_key, run_key = jax.random.split(key, 3)
  g_params, g_buffers, d_params = nets.init(init_key, config.train.batch_gpu)
  num_pools = config.train.batch_size // config.train.batch_gpu
  return TrainState(
      step=jnp.zeros((), jnp.int32), images_seen=jnp.zeros((), jnp.int32),
      g_params=g_params, g_buffers=g_buffers, g_ema_params=g_params, d_params=d_params,
      g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
      diffusion=diffusion.init_state(ctrl_key, config.diffusion, num_pools),
      pl_mean=jnp.zeros((), jnp.float32), key=run_key)


def total_steps(config: ml_collections.ConfigDict) -> int:
  return int(np.ceil(config.train.total_kimg * 1000 / config.train.batch_size))


def kimg_to_steps(config: ml_collections.ConfigDict, kimg: float) -> int:
  return max(1, int(round(kimg * 1000 / config.train.batch_size))) if kimg else 0


# ---------------------------------------------------------------------------------------------------
# Data.


def resolve_data_source(config: ml_collections.ConfigDict) -> None:
  """`data.source='auto'`: the folder/zip at `data.path` when one is given, else tfds `data.name`."""
  if config.data.source == 'auto':
    config.data.source = 'zip' if config.data.path else 'tfds'


def prepare_image_config(config: ml_collections.ConfigDict) -> None:
  """Checks the dataset against the config (before compiling) and takes its label count."""
  from dgan_jax.data import pipeline
  resolve_data_source(config)
  info = pipeline.dataset_info(config.data)
  config_checks.check_dataset(config, info)   # [reliability] shape and size vs the config
  config.model.c_dim = info.c_dim if config.data.use_labels else 0


def make_data_iterator(config: ml_collections.ConfigDict, start_step: int):
  """This host's part of each global batch, starting at `start_step` (deterministic for resume)."""
  if config.experiment == 'toy':
    from dgan_jax import toy
    return toy.data_batches(config.seed, config.train.batch_size, start_step,
                            jax.process_index(), jax.process_count())
  from dgan_jax.data import pipeline
  return pipeline.make_train_iterator(config.data, config.train.batch_size, config.seed,
                                      jax.process_index(), jax.process_count(), start_step)


# ---------------------------------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_after_steps: int | None = None) -> TrainState:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the final state.

  `stop_after_steps` ends the loop early as an interrupted run would (checkpoint saved), for tests.
  """
  # --- Setup -------------------------------------------------------------------------------------
  mesh = steps.make_mesh()
  config_checks.validate(config, mesh.size)
  if config.experiment == 'image':
    prepare_image_config(config)
  # [reliability] lock, resume-config check, writable checkpoints, atomic config.json; see run_guard.
  with run_guard.open_run(workdir, config) as workdir:
    return _train_in_workdir(config, workdir, mesh, stop_after_steps)


def _train_in_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh,
                      stop_after_steps: int | None) -> TrainState:
  """The body of `train_and_evaluate` once the workdir is open (locked, config checked)."""
  is_main = jax.process_index() == 0
  writer = metric_writers.create_default_writer(str(workdir), just_logging=not is_main)
  nets = build_networks(config)
  g_tx, d_tx = make_optimizers(config)
  replicated = NamedSharding(mesh, P())
  evaluator = evaluation.Evaluator(config, nets) if config.eval.metrics else None

  # --- State: fresh or restored ------------------------------------------------------------------
  init = jax.jit(lambda: create_train_state(config, nets, g_tx, d_tx), out_shardings=replicated)
  health = divergence.Tracker(divergence.hint_for(config, workdir))   # [reliability]
  ckpt = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints, guard=health)
  if ckpt.latest_step() is not None:
    abstract = checkpoint.abstract_like(jax.eval_shape(init), replicated)
    state, _ = ckpt.restore_latest_good(abstract)   # [reliability] verified; skips damaged ones
    logging.info('Resumed from %s at step %d.', ckpt.directory, int(state.step))
  else:
    state = init()
  start = int(state.step)
  num_steps = total_steps(config)
  end = num_steps if stop_after_steps is None else min(num_steps, start + stop_after_steps)

  # --- Compiled steps ------------------------------------------------------------------------------
  r1_every = config.loss.r1_interval if config.loss.r1_gamma > 0 else 0
  pl_every = config.loss.pl_interval if config.loss.pl_weight > 0 else 0
  train_step = {(pl, r1): steps.make_train_step(config, nets, mesh, g_tx, d_tx, do_pl=pl, do_r1=r1)
                for pl in {False, bool(pl_every)} for r1 in {False, bool(r1_every)}}
  update_controller = steps.make_controller_update(config, mesh)
  ada_every = config.diffusion.ada_interval
  ckpt_every = kimg_to_steps(config, config.train.checkpoint_every_kimg)
  eval_every = kimg_to_steps(config, config.eval.every_kimg)
  best = BestCheckpoint(workdir, evaluator) if evaluator else None

  # --- Loop ----------------------------------------------------------------------------------------
  data = prefetch_to_mesh(make_data_iterator(config, start), mesh, size=max(config.data.prefetch, 1))
  samples = grids.SampleGrid(config, nets, workdir) if config.experiment == 'image' else None
  sample_every = kimg_to_steps(config, config.train.sample_every_kimg)
  if samples is not None and is_main and start == 0:
    samples.save_reals(make_data_iterator(config, 0))
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                           every_steps=config.train.log_every_steps)
  history = [h for h in _load_history(workdir) if h['step'] <= start]
  stop = interrupts.StopFlag()   # [reliability] SIGTERM and Ctrl-C
  t0, step = time.time(), start
  try:
    while step < end and not stop.set:
      batch = next(data)
      variant = (bool(pl_every) and step % pl_every == 0, bool(r1_every) and step % r1_every == 0)
      state, metrics = train_step[variant](state, batch)
      step += 1
      health.observe(metrics, step)   # [reliability] no host sync
      if step % ada_every == 0:
        state = update_controller(state)
      if step % config.train.log_every_steps == 0 or step == end:
        images_per_sec = (step - start) * config.train.batch_size / (time.time() - t0)
        health.check(step, state, metrics)   # [reliability] raises DivergenceError
        row = _log(writer, step, state, metrics, config, images_per_sec)
        history.append(row)
        if is_main:
          _print_progress(row, step, num_steps, start, time.time() - t0, config)
      report(step)
      if ckpt_every and step % ckpt_every == 0:
        ckpt.save(step, state, config)
        if is_main:
          _save_history(workdir, history)
      if samples is not None and sample_every and step % sample_every == 0:
        samples.write(state, step, writer, is_main)
      if best and eval_every and step % eval_every == 0 and step < num_steps:
        best.evaluate(state, step, config, writer)
    logging.info('Trained steps %d..%d in %.1fs.', start, step, time.time() - t0)
    if ckpt.latest_step() != step:
      ckpt.save(step, state, config, force=True)
  finally:
    stop.restore()
    ckpt.close()   # [reliability] also on errors: the good save in flight completes
  if is_main:
    _save_history(workdir, history)
  writer.flush()
  if step >= num_steps:
    if samples is not None:
      samples.write(state, step, writer, is_main)
    if best:
      best.evaluate(state, step, config, writer)
      best.close()
    if is_main:
      final_report(config, nets, state, workdir, history, writer)
    writer.flush()
  return state


class BestCheckpoint:
  """Evaluates the metrics and keeps the best state by the first one under `<workdir>/best`.

  `best.json` records the best value and step, so a resumed run keeps comparing against it.
  """

  def __init__(self, workdir: pathlib.Path, evaluator):
    self.workdir, self.evaluator = workdir, evaluator
    self.ckpt = checkpoint.Checkpointer(workdir, keep=1, subdir='best')
    self.best = (run_files.read_json(workdir / 'best.json') or {}).get('value')   # [reliability]

  def evaluate(self, state, step: int, config, writer) -> dict:
    results = self.evaluator(state)
    kimg = step * config.train.batch_size / 1000
    if jax.process_index() == 0:
      evaluation.write_results(self.workdir, step, kimg, results, writer)
    value = self.evaluator.primary_value(results)
    if self.evaluator.improves(value, self.best) and self.ckpt.latest_step() != step:
      self.best = value
      self.ckpt.save(step, state, config, force=True)
      self.ckpt.wait()
      if jax.process_index() == 0:
        run_files.write_json(self.workdir / 'best.json',   # [reliability] atomic
                             {'metric': self.evaluator.primary, 'value': value, 'step': step,
                              'kimg': kimg})
    return results

  def close(self):
    self.ckpt.close()


def _log(writer, step: int, state: TrainState, metrics, config, images_per_sec: float) -> dict:
  """Writes this step's scalars (one device read) and returns the controller's trajectory row."""
  scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
  ctrl = jax.device_get(state.diffusion)
  scalars.update({'diffusion/p': float(ctrl.p), 'diffusion/T': float(ctrl.T),
                  'diffusion/r_d': float(ctrl.r_d_last),
                  'progress/kimg': step * config.train.batch_size / 1000,
                  'progress/images_per_sec': images_per_sec})
  writer.write_scalars(step, scalars)
  return {'step': step, 'p': float(ctrl.p), 'T': int(ctrl.T), 'r_d': float(ctrl.r_d_last),
          'loss/G': scalars['loss/G'], 'loss/D': scalars['loss/D']}


def _print_progress(row: dict, step: int, num_steps: int, start: int, elapsed: float, config) -> None:
  """One human-readable progress line on stdout (clu's ReportProgress also logs steps/s and ETA)."""
  rate = (step - start) / max(elapsed, 1e-9)
  eta = (num_steps - step) / max(rate, 1e-9)
  speed = f'{rate:.1f} steps/s' if rate >= 1 else f'{1 / max(rate, 1e-9):.1f} s/step'
  print(f'step {step}/{num_steps} kimg {step * config.train.batch_size / 1000:.1f} | '
        f'T {row["T"]} p {row["p"]:.4f} r_d {row["r_d"]:+.3f} | '
        f'loss G {row["loss/G"]:.3f} D {row["loss/D"]:.3f} | {speed} | '
        f'ETA {int(eta // 60)}m{int(eta % 60):02d}s', flush=True)


def _load_history(workdir: pathlib.Path) -> list:
  return run_files.read_json(workdir / 'diffusion_history.json', default=[])   # [reliability]


def _save_history(workdir: pathlib.Path, history: list) -> None:
  run_files.write_json(workdir / 'diffusion_history.json', history)   # [reliability] atomic


def evaluate_run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=eval`: the metrics of the latest checkpoint in `workdir` (G_ema), logged to
  `metrics.jsonl` and TensorBoard."""
  mesh = steps.make_mesh()
  config_checks.validate(config, mesh.size)
  if config.experiment == 'image':
    prepare_image_config(config)
  if not config.eval.metrics:
    raise errors.UserError('--mode=eval needs metrics: --config.eval.metrics=fid50k_full,...')
  workdir = pathlib.Path(workdir)
  if not any((workdir / 'checkpoints').glob('[0-9]*')):
    raise errors.MissingInputError(f'No checkpoint under {workdir / "checkpoints"}; train first or '
                                   'check --workdir.')
  from dgan_jax import run_dir
  nets, state = run_dir.restore_state(workdir, config)
  evaluator = evaluation.Evaluator(config, nets)
  results = evaluator(state)
  writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
  if jax.process_index() == 0:
    evaluation.write_results(workdir, int(state.step),
                             int(state.images_seen) / 1000, results, writer)
  writer.flush()
  return results


# ---------------------------------------------------------------------------------------------------
# Final report.


def final_report(config, nets: Networks, state: TrainState, workdir: pathlib.Path, history, writer):
  """Experiment-specific outputs of a finished run (toy: samples, figures, mode coverage)."""
  if history:
    plots.plot_trajectory(workdir / 'diffusion_trajectory.png', [h['step'] for h in history],
                        [h['p'] for h in history], [h['T'] for h in history],
                        [h['r_d'] for h in history], config.diffusion.target)
  if config.experiment != 'toy':
    return
  from dgan_jax import toy
  n = 10_000
  z = jax.random.normal(jax.random.key(config.seed + 1), (n, nets.z_dim))
  c = jnp.zeros((n, 0), jnp.float32)
  samples, _ = jax.jit(lambda p, b: nets.generate(p, b, z, c, jax.random.key(0)))(
      state.g_ema_params, state.g_buffers)
  samples = np.asarray(samples, np.float32)
  np.save(workdir / 'samples.npy', samples)
  cov = toy.mode_coverage(samples)
  data = toy.sample_data(np.random.default_rng(config.seed), n)
  d_fn = jax.jit(lambda x: nets.discriminate(state.d_params, x, c[:x.shape[0]],
                                             jnp.zeros((x.shape[0],), jnp.int32)))
  label = 'Diffusion-GAN' if config.diffusion.enabled else 'vanilla GAN'
  toy.plot_report(workdir / 'toy25.png', data, samples, d_fn,
                  f'{label}: {cov["modes_covered"]}/25 modes, '
                  f'{100 * cov["high_quality_fraction"]:.1f}% high-quality samples')
  results = {'modes_covered': cov['modes_covered'],
             'high_quality_fraction': cov['high_quality_fraction'],
             'final_T': int(state.diffusion.T), 'final_p': float(state.diffusion.p)}
  run_files.write_json(workdir / 'results.json', results, indent=2)   # [reliability] atomic
  writer.write_scalars(int(state.step), {'eval/modes_covered': results['modes_covered'],
                                         'eval/high_quality_fraction': results['high_quality_fraction']})
  logging.info('Toy results: %s', results)
  print(f'[{label}] modes covered: {cov["modes_covered"]}/25, high-quality samples: '
        f'{100 * cov["high_quality_fraction"]:.1f}%  -> {workdir}', flush=True)
