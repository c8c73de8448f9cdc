"""The training loop: setup, state (fresh or resumed), data, compiled steps, loop, final report.

`train_and_evaluate(config, workdir)` is what `python -m dgan_jax.main` runs. Resuming is automatic:
if `<workdir>/checkpoints` holds a checkpoint, training continues from it with the same randomness
(every draw of step k derives from `fold_in(key, k)`) and the same data order.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from dgan_jax import checkpoint, config_checks, evaluation, families, paths, plots, steps, writers
from dgan_jax import divergence, errors, interrupts, run_files, run_guard  # [reliability]
from dgan_jax.data.device import prefetch_to_mesh
from dgan_jax.networks import Networks
from dgan_jax.train_state import TrainState


# ---------------------------------------------------------------------------------------------------
# State and data, through the run's model family (dgan_jax/families).


def make_optimizers(config: ml_collections.ConfigDict):
  return families.get(config).make_optimizers(config)


def create_train_state(config: ml_collections.ConfigDict, nets: Networks, g_tx, d_tx) -> TrainState:
  """A fresh state from `config.seed` (pure: the same seed gives the same state everywhere)."""
  return families.get(config).init_state(config, nets, g_tx, d_tx)


def make_data_iterator(config: ml_collections.ConfigDict, start_step: int):
  """This host's part of each global batch, starting at `start_step` (deterministic for resume)."""
  return families.get(config).data_iterator(config, start_step)


def total_steps(config: ml_collections.ConfigDict) -> int:
  """`train.total_steps` when set, else `train.total_kimg` in steps of the global batch."""
  if config.train.get('total_steps', 0):
    return int(config.train.total_steps)
  return int(np.ceil(config.train.total_kimg * 1000 / config.train.batch_size))


def make_writer(workdir: paths.PathLike, config: ml_collections.ConfigDict, is_main: bool):
  """TensorBoard events (main process); every scalar also logged with `train.verbose_logs`.

  By default the console shows one progress line per log interval (see _print_progress), not
  per-metric log lines. Works without TensorFlow (dgan_jax/writers.py)."""
  return writers.make_writer(workdir, is_main=is_main,
                             verbose=bool(config.train.get('verbose_logs', False)))


def kimg_to_steps(config: ml_collections.ConfigDict, kimg: float) -> int:
  return max(1, int(round(kimg * 1000 / config.train.batch_size))) if kimg else 0


def setup_config(config: ml_collections.ConfigDict, num_devices: int):
  """Validates `config` and lets its family read the dataset facts; returns the family."""
  config_checks.validate(config, num_devices)
  family = families.get(config)
  family.prepare(config)
  if config.train.get('resume_from') and config.train.ema_rampup:
    config.train.ema_rampup = 0.0     # As the reference on --resume: no EMA ramp-up.
  return family


# ---------------------------------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_after_steps: int | None = None) -> TrainState:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the final state.

  `stop_after_steps` ends the loop early as an interrupted run would (checkpoint saved), for tests.
  """
  # --- Setup -------------------------------------------------------------------------------------
  mesh = steps.make_mesh()
  family = setup_config(config, mesh.size)
  # [reliability] lock, resume-config check, writable checkpoints, atomic config.json; see run_guard.
  with run_guard.open_run(workdir, config) as workdir:
    return _train_in_workdir(config, family, workdir, mesh, stop_after_steps)


def _train_in_workdir(config: ml_collections.ConfigDict, family, workdir: paths.PathLike, mesh,
                      stop_after_steps: int | None) -> TrainState:
  """The body of `train_and_evaluate` once the workdir is open (locked, config checked)."""
  is_main = jax.process_index() == 0
  writer = make_writer(workdir, config, is_main)
  nets = family.build_networks(config)
  g_tx, d_tx = family.make_optimizers(config)
  replicated = NamedSharding(mesh, P())
  label_dist = family.label_distribution(config)
  evaluator = evaluation.training_evaluator(config, nets, label_dist)

  # --- State: fresh or restored ------------------------------------------------------------------
  init = jax.jit(lambda: family.init_state(config, nets, g_tx, d_tx), out_shardings=replicated)
  health = divergence.Tracker(divergence.hint_for(config, workdir))   # [reliability]
  ckpt = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints, guard=health)
  if ckpt.latest_step() is not None:
    abstract = checkpoint.abstract_like(jax.eval_shape(init), replicated)
    state, _ = ckpt.restore_latest_good(abstract)   # [reliability] verified; skips damaged ones
    logging.info('Resumed from %s at step %d.', ckpt.directory, int(state.step))
    if is_main:
      print(f'Resumed from {ckpt.directory} at step {int(state.step)}.', flush=True)
  elif config.train.resume_from:
    state, notes = family.transfer_state(config, init(), config.train.resume_from)
    state = jax.device_put(state, replicated)
    for note in [f'Transfer learning from {config.train.resume_from}: fresh optimizer state and '
                 'progress, EMA ramp-up off (reference --resume).'] + notes:
      logging.info(note)
      if is_main:
        print(note, flush=True)
  else:
    state = init()
  start = int(state.step)
  num_steps = total_steps(config)
  if start > num_steps:
    raise errors.UserError(
        f'The run in {workdir} is at step {start} ({int(state.images_seen) / 1000:g} kimg), past '
        f'train.total_kimg={config.train.total_kimg:g} ({num_steps} steps): nothing to train. Set '
        f'--config.train.total_kimg above {int(state.images_seen) / 1000:g} to continue.')
  end = num_steps if stop_after_steps is None else min(num_steps, start + stop_after_steps)

  # --- Compiled steps ------------------------------------------------------------------------------
  train_step = family.make_steps(config, nets, mesh, g_tx, d_tx, label_dist)
  adaptive = config.diffusion.enabled
  ada_every = steps.controller_interval(config)
  update_controller = steps.make_controller_update(config, mesh) if ada_every else None
  ckpt_every = kimg_to_steps(config, config.train.checkpoint_every_kimg)
  eval_every = kimg_to_steps(config, config.eval.every_kimg)
  best = BestCheckpoint(workdir, evaluator, guard=health) if evaluator else None

  # --- Loop ----------------------------------------------------------------------------------------
  data = prefetch_to_mesh(family.data_iterator(config, start), mesh,
                          size=max(config.data.prefetch, 1))
  samples = family.sample_grid(config, nets, workdir)
  sample_every = kimg_to_steps(config, config.train.sample_every_kimg)
  if samples is not None and is_main and start == 0:
    samples.save_reals(family.data_iterator(config, 0))
  history = [h for h in _load_history(workdir) if h['step'] <= start]
  stop = interrupts.StopFlag()   # [reliability] SIGTERM and Ctrl-C
  t0, step = time.time(), start
  clock = _SteadyClock(start)
  latest = {}   # Each metric's last value: with train.n_dis > 1 most steps have no G loss.
  try:
    while step < end and not stop.set:
      batch = next(data)
      state, metrics = train_step(step, state, batch)
      latest.update(metrics)
      step += 1
      clock.tick(step, state)
      health.observe(metrics, step)   # [reliability] no host sync
      if ada_every and step % ada_every == 0:
        state = update_controller(state)
      if step % config.train.log_every_steps == 0 or step == end:
        images_per_sec = (step - start) * config.train.batch_size / (time.time() - t0)
        health.check(step, state, metrics)   # [reliability] raises DivergenceError
        row = _log(writer, step, state, latest, config, images_per_sec)
        history.append(row)
        if is_main:
          _print_progress(row, step, num_steps, clock, config)
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
      if adaptive and history:
        plots.plot_trajectory(workdir / 'diffusion_trajectory.png', [h['step'] for h in history],
                              [h['p'] for h in history], [h['T'] for h in history],
                              [h['r_d'] for h in history], config.diffusion.target)
      family.final_report(config, nets, state, workdir, writer)
    writer.flush()
  return state


class BestCheckpoint:
  """Evaluates the metrics and keeps the best state by the first one under `<workdir>/best`.

  `best.json` records the best value and step, so a resumed run keeps comparing against it.
  """

  def __init__(self, workdir: paths.PathLike, evaluator, guard=None):
    self.workdir, self.evaluator = workdir, evaluator
    self.ckpt = checkpoint.Checkpointer(workdir, keep=1, subdir='best', guard=guard)
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
  """Writes this step's scalars (one device read) and returns the progress/trajectory row."""
  scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
  scalars.update({'progress/kimg': step * config.train.batch_size / 1000,
                  'progress/images_per_sec': images_per_sec})
  row = {'step': step, 'loss/G': scalars.get('loss/G', float('nan')),
         'loss/D': scalars.get('loss/D', float('nan')),
         # D's mean logits on (diffused) reals and fakes: their gap over time shows D overfitting.
         'score_real': scalars.get('scores/real', float('nan')),
         'score_fake': scalars.get('scores/fake', float('nan'))}
  if config.diffusion.enabled:
    ctrl = jax.device_get(state.diffusion)
    scalars.update({'diffusion/p': float(ctrl.p), 'diffusion/T': float(ctrl.T),
                    'diffusion/r_d': float(ctrl.r_d_last)})
    row.update({'p': float(ctrl.p), 'T': int(ctrl.T), 'r_d': float(ctrl.r_d_last)})
  if config.get('augment') and config.augment.kind == 'ada':
    aug = jax.device_get(state.augment)
    scalars['augment/p'] = float(aug.p)
    row['augment_p'] = float(aug.p)
  writer.write_scalars(step, scalars)
  return row


class _SteadyClock:
  """Speed and ETA from steady-state steps: the clock starts once the first step (which includes
  compiling) has finished, so the ETA is not inflated by compile time."""

  def __init__(self, start: int):
    self.start, self.t_first, self.first = start, None, None

  def tick(self, step: int, state) -> None:
    if self.t_first is None:
      jax.block_until_ready(state.step)
      self.t_first, self.first = time.time(), step

  def rate(self, step: int) -> float | None:
    """Steps per second since the first step, or None before a second step finished."""
    if self.t_first is None or step <= self.first:
      return None
    return (step - self.first) / max(time.time() - self.t_first, 1e-9)


def _print_progress(row: dict, step: int, num_steps: int, clock: _SteadyClock, config) -> None:
  """One human-readable progress line on stdout, with speed and ETA from steady-state steps."""
  rate = clock.rate(step)
  if rate is None:
    speed, eta_text = 'compiling', 'ETA -'
  else:
    eta = (num_steps - step) / max(rate, 1e-9)
    speed = f'{rate:.1f} steps/s' if rate >= 1 else f'{1 / max(rate, 1e-9):.1f} s/step'
    eta_text = f'ETA {int(eta // 3600)}h{int(eta % 3600 // 60):02d}m' if eta >= 3600 else \
        f'ETA {int(eta // 60)}m{int(eta % 60):02d}s'
  level = (f'T {row["T"]} p {row["p"]:.4f} r_d {row["r_d"]:+.3f} | ' if 'T' in row else '')
  if 'augment_p' in row:
    level += f'ada p {row["augment_p"]:.3f} | '

  print(f'step {step}/{num_steps} kimg {step * config.train.batch_size / 1000:.1f} | {level}'
        f'loss G {row["loss/G"]:.3f} D {row["loss/D"]:.3f} | {speed} | {eta_text}', flush=True)


def _load_history(workdir: paths.PathLike) -> list:
  return run_files.read_json(workdir / 'diffusion_history.json', default=[])   # [reliability]


def _save_history(workdir: paths.PathLike, history: list) -> None:
  run_files.write_json(workdir / 'diffusion_history.json', history)   # [reliability] atomic


def evaluate_run(config: ml_collections.ConfigDict, workdir: str, step: int | None = None) -> dict:
  """`--mode=eval`: the metrics of checkpoint `step` (default: the latest) in `workdir` (G_ema),
  logged to `metrics.jsonl` and TensorBoard."""
  mesh = steps.make_mesh()
  family = setup_config(config, mesh.size)
  if not config.eval.metrics:
    raise errors.UserError('--mode=eval needs metrics: --config.eval.metrics=fid50k_full,...')
  workdir = paths.path(workdir)
  if not any((workdir / 'checkpoints').glob('[0-9]*')):
    raise errors.MissingInputError(f'No checkpoint under {workdir / "checkpoints"}; train first or '
                                   'check --workdir.')
  from dgan_jax import run_dir
  if step is not None and not (workdir / 'checkpoints' / str(step)).is_dir():
    steps_there = sorted(int(p.name) for p in (workdir / 'checkpoints').glob('[0-9]*'))
    raise errors.MissingInputError(f'No checkpoint at step {step} under {workdir / "checkpoints"}; '
                                   f'the run has steps {steps_there}.')
  nets, state = run_dir.restore_state(workdir, config, step)
  evaluator = evaluation.Evaluator(config, nets, family.label_distribution(config))
  results = evaluator(state)
  writer = make_writer(workdir, config, jax.process_index() == 0)
  if jax.process_index() == 0:
    evaluation.write_results(workdir, int(state.step),
                             int(state.images_seen) / 1000, results, writer)
  writer.flush()
  return results
