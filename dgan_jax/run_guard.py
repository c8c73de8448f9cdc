"""Opening a run directory for training: everything that must hold before the first byte is written.

`open_run(workdir, config)` (a context manager around the whole training call), in this order:
1. takes the workdir lock (process 0; workdir_lock.py), so one process writes the run;
2. compares the config with the one the run's latest checkpoint was saved with (resume_check.py):
   safe changes are noted, others refused before anything is written (config.json stays as it was);
3. checks that the checkpoint folder takes files (a read-only folder fails here, in seconds, not
   after compiling and not with a hang at exit);
4. writes `config.json` atomically.
On the way out it releases the lock. If this call created the workdir and fails on bad input (a
UserError) before any checkpoint exists, it removes the workdir again: a failed start leaves no
half-made run behind (a diverged or crashed run keeps its logs).
"""
from __future__ import annotations

import contextlib
import shutil

import jax
import ml_collections
from absl import logging

from dgan_jax import checkpoint, errors, paths, resume_check, run_files, workdir_lock


def saved_run_config(workdir: paths.epath.Path) -> tuple[dict | None, int | None]:
  """(config, step) of the newest checkpoint whose config reads; (None, None) without checkpoints."""
  if not _has_checkpoint(workdir):
    # Not `checkpoints/` alone: process 0 creates it (check_writable) while the others may still be
    # here, and opening an orbax manager is a multi-host sync all processes must join alike.
    return None, None
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)
  try:
    steps = ckpt.all_steps()
    for step in reversed(steps):
      try:
        return ckpt.restore_config(step), step
      except Exception:  # pylint: disable=broad-except  (a damaged checkpoint: try an older one)
        logging.warning('The config of checkpoint %d in %s does not read; trying an older one.',
                        step, ckpt.directory)
    if steps:
      saved = run_files.read_json(workdir / 'config.json')
      return saved, (steps[-1] if saved is not None else None)
    return None, None
  finally:
    ckpt.manager.close()


@contextlib.contextmanager
def open_run(workdir: paths.PathLike, config: ml_collections.ConfigDict):
  """Yields the workdir (an epath.Path, local or gs://) ready for training; see the module
  docstring."""
  workdir = paths.path(workdir)
  is_main = jax.process_index() == 0
  created = not workdir.exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise errors.StorageError(f'Cannot create the workdir {workdir}: {e.strerror or e}. Pick a '
                              'writable --workdir.') from e
  lock = workdir_lock.WorkdirLock(workdir).acquire() if is_main else None
  try:
    saved, step = saved_run_config(workdir)
    if saved is not None:
      for note in resume_check.check(saved, config.to_dict(), str(workdir), step):
        logging.info('Resume: %s', note)
        if is_main:
          print(f'Resuming with a changed setting: {note}', flush=True)
    checkpoint.check_writable(workdir / 'checkpoints')
    if is_main:
      run_files.write_atomic(workdir / 'config.json', config.to_json(indent=2))
    yield workdir
  except errors.UserError:
    if created and is_main and not _has_checkpoint(workdir):
      if paths.is_remote(workdir):
        workdir.rmtree(missing_ok=True)
      else:
        shutil.rmtree(workdir, ignore_errors=True)
    raise
  finally:
    if lock is not None:
      lock.release()


def _has_checkpoint(workdir: paths.epath.Path) -> bool:
  directory = workdir / 'checkpoints'
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())
