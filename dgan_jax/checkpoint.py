"""Orbax checkpoints of the whole train state (optimizer moments and diffusion controller included),
with an integrity record, a fallback past damaged checkpoints and clear storage errors.

Orbax writes every checkpoint into a temporary directory and renames it into place only once it is
complete, so a run killed mid-save leaves the previous good checkpoint as the latest one; we never
delete a checkpoint ourselves (only orbax's keep-last-k policy retires old ones after a newer one is
final). Every process calls save and restore (multi-host); the resolved config is saved beside the
state.

Integrity: `save` computes a CRC32 of every state leaf (from the host copy it takes anyway) and
stores them in the checkpoint's own `_CHECKPOINT_METADATA` (orbax custom metadata, committed
atomically with the checkpoint). `restore` recomputes them on the restored values and refuses a
checkpoint whose values differ (a flipped byte), whose files do not read (truncated, garbage,
missing `_METADATA`, an empty step folder) or whose metadata is unreadable. `restore_latest_good`
(the training loop's resume) then falls back to the newest checkpoint that verifies, reports each
one it skipped and why, and moves the damaged ones aside to `<workdir>/damaged_checkpoints/`
(never deleting them). When no checkpoint verifies nothing is moved (the likeliest cause is then a
code or config mismatch, not damage) and the error lists every step with its reason.

Storage: before each save the folder must accept a file and hold the new checkpoint (free space at
least its expected size), so a read-only folder or a full disk is one clear StorageError before
orbax starts writing; orbax's own write errors are turned into the same error. A checkpoint is never
written from a state holding NaN or inf (DivergenceError).

Buckets (gs://, dgan_jax/paths.py): orbax commits a checkpoint there by writing a
`commit_success.txt` marker last instead of renaming a temporary folder, and skips folders without
it; the writable check writes and deletes a probe object; there is no free-space figure to check.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
import zlib

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from dgan_jax import errors, paths

INTEGRITY_KEY = 'dgan_jax_integrity'
INTEGRITY_FORMAT = 'crc32-per-leaf-v1'
DAMAGED_DIR = 'damaged_checkpoints'
# Orbax's words for "the stored state has other shapes/structure than the target" (not damage).
_MISMATCH_MARKERS = ('not compatible with the stored shape', 'tree structure', 'pytree structure',
                     'Requested shape')
_OS_CAUSES = ('No space left on device', 'File too large', 'Disk quota exceeded',
              'Read-only file system', 'Permission denied', 'Operation not permitted')
_STORAGE_HINTS = ('No space left', 'RESOURCE_EXHAUSTED', 'Permission denied', 'PERMISSION_DENIED',
                  'Operation not permitted', 'Read-only file system', 'File too large',
                  'OUT_OF_RANGE', 'Disk quota', 'Errno')


class Checkpointer:
  """Keeps the last `keep` checkpoints of a run under `<workdir>/<subdir>` ('checkpoints', or
  'best' for the best-metric one). `read_only` opens an existing folder without creating it."""

  def __init__(self, workdir: paths.PathLike, keep: int = 3, subdir: str = 'checkpoints',
               read_only: bool = False, guard=None):
    self.workdir = paths.path(workdir)
    if not paths.is_remote(self.workdir):
      self.workdir = paths.path(os.path.abspath(self.workdir))
    self.directory = self.workdir / subdir
    if read_only and not self.directory.is_dir():
      raise errors.MissingInputError(
          f'{self.workdir} has no checkpoints ({self.directory} does not exist); pass the '
          '--workdir of a dgan_jax run (or create one from a reference pickle with '
          'python -m dgan_jax.import_torch).')
    try:
      self.manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=None if read_only else keep, create=not read_only,
              read_only=read_only, save_interval_steps=0 if read_only else 1,
              cleanup_tmp_directories=not read_only),
          item_names=('state', 'config'))
    except OSError as e:
      raise errors.StorageError(
          f'Cannot create the checkpoint folder {self.directory}: {e.strerror or e}. Fix the '
          'permissions of the workdir (or remove the file in the way), or pass another '
          '--workdir.') from e
    self._failed = None
    self.restored_record = None   # The integrity record of the last verified restore.
    self.guard = guard     # divergence.Tracker: save() first checks that no step was non-finite.

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  # --- Saving ---------------------------------------------------------------------------------

  def check_writable(self, needed_bytes: int = 0) -> None:
    check_writable(self.directory, needed_bytes, self._kept())

  def save(self, step: int, state, config: ml_collections.ConfigDict, *, force: bool = False) -> bool:
    """Starts an asynchronous save of `state` at `step`; `wait()` before exiting.

    Raises DivergenceError (nothing written) if the guard saw a non-finite step or the state holds
    a NaN or inf, StorageError if the folder cannot take it.
    """
    if self._failed is not None:
      raise self._failed
    if not force and not self.manager.should_save(step):
      return False
    if self.guard is not None:
      self.guard.check(step, state)
    host = _host_leaves(state)
    bad = [path for path, array in host if array.dtype.kind in 'fc' and not np.all(np.isfinite(array))]
    if bad:
      raise errors.DivergenceError(
          f'Refusing to save step {step}: the state holds NaN or inf in {", ".join(bad[:5])}'
          f'{" ..." if len(bad) > 5 else ""}. The checkpoints before it are kept.')
    record = {'format': INTEGRITY_FORMAT, 'devices': jax.device_count(),
              'crc32': {path: _crc(a) for path, a in host}}
    self.check_writable(self._expected_size(host))
    try:
      return self.manager.save(
          step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                        config=ocp.args.JsonSave(config.to_dict())),
          force=force, custom_metadata={INTEGRITY_KEY: record})
    except Exception as e:  # pylint: disable=broad-except  (orbax re-raises the previous save's)
      raise self._storage_error(step, e)

  def wait(self) -> None:
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._storage_error(None, e)

  def close(self) -> None:
    """Waits for the save in flight and closes; after a storage error only closes."""
    try:
      if self._failed is None:
        self.wait()
    finally:
      if self._failed is None:
        self.manager.close()

  def _expected_size(self, host) -> int:
    """About what the next checkpoint takes: the last one's size on disk, else the state's bytes."""
    if paths.is_remote(self.directory):
      return 0    # No free-space figure in a bucket (check_writable); listing it would cost RPCs.
    steps = self.all_steps()
    if steps:
      last = os.path.join(self.directory, str(steps[-1]))
      size = sum(os.path.getsize(os.path.join(folder, name))
                 for folder, _, names in os.walk(last) for name in names)
    else:
      size = sum(a.nbytes for _, a in host)
    return int(size * 1.1) + (1 << 20)

  def _storage_error(self, step, e: Exception) -> Exception:
    text = str(e)
    if not isinstance(e, OSError) and not any(h in text for h in _STORAGE_HINTS):
      return e     # Not a storage failure: a bug, keep it as it is.
    reason = getattr(e, 'strerror', None) or next(
        (cause for cause in _OS_CAUSES if cause in text), None) or _short_reason(text)
    failed = re.search(r'/(\d+)\.orbax-checkpoint-tmp', text)   # The save that failed (an
    step = int(failed.group(1)) if failed else step             # earlier one, if async).
    at = f' step {step}' if step is not None else ''
    self._failed = errors.StorageError(
        f'Could not write checkpoint{at} into {self.directory}: {reason}. Free some space or fix '
        f'the folder\'s permissions, then run the same command to resume{self._kept()}.')
    return self._failed

  def _kept(self) -> str:
    try:
      steps = [s for s in self.all_steps() if (self.directory / str(s)).is_dir()]
    except Exception:  # pylint: disable=broad-except
      return ''
    return f' (intact checkpoints: steps {", ".join(map(str, steps))})' if steps else ''

  # --- Restoring ------------------------------------------------------------------------------

  def restore(self, abstract_state, step: int | None = None):
    """Restores `step` (latest if None) into `abstract_state` and verifies it against its
    integrity record; raises CheckpointError if it is damaged."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise errors.MissingInputError(f'No checkpoint under {self.directory}.')
    record = self._integrity_record(step)
    self._check_files(step)
    try:
      restored = self.manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))['state']
    except Exception as e:  # pylint: disable=broad-except  (orbax raises many kinds)
      text = str(e)
      if any(marker in text for marker in _MISMATCH_MARKERS):
        raise errors.CheckpointMismatchError(
            f'Checkpoint step {step} in {self.directory} holds a state of other shapes or structure '
            f'than the one expected (another config, preset or code version?): {_short_reason(text)}'
        ) from e
      raise errors.CheckpointError(
          f'Checkpoint step {step} in {self.directory} does not read: {_short_reason(text)}') from e
    self.restored_record = record
    if record is None:
      logging.warning('Checkpoint step %d in %s has no integrity record (written by an older '
                      'dgan_jax?); restored without verification.', step, self.directory)
      return restored
    expected = record.get('crc32', {})
    got = {path: _crc(a) for path, a in _host_leaves(restored)}
    wrong = sorted(p for p in set(expected) | set(got) if expected.get(p) != got.get(p))
    if wrong:
      raise errors.CheckpointError(
          f'Checkpoint step {step} in {self.directory} is damaged: {len(wrong)} of {len(got)} '
          f'arrays differ from their checksums at save time ({", ".join(wrong[:4])}'
          f'{" ..." if len(wrong) > 4 else ""}).')
    return restored

  def restore_latest_good(self, abstract_state):
    """(state, step) of the newest checkpoint that verifies. Newer damaged ones are reported and
    moved aside to `<workdir>/damaged_checkpoints/`; if none verifies, raises CheckpointError
    listing each and why, and moves nothing."""
    failures = []
    for step in reversed(self.all_steps()):
      try:
        state = self.restore(abstract_state, step)
      except errors.CheckpointError as e:
        failures.append((step, str(e)))
        continue
      for bad_step, reason in failures:
        where = self._move_aside(bad_step)
        message = f'Skipped damaged checkpoint {bad_step}: {reason} Moved it to {where}.'
        logging.warning('%s', message)
        if jax.process_index() == 0:
          print(message, flush=True)
      if failures:
        self.manager.reload()
      saved_on = (self.restored_record or {}).get('devices')
      if saved_on not in (None, jax.device_count()) and jax.process_index() == 0:
        print(f'Note: checkpoint step {step} was written on {saved_on} device(s), this run has '
              f'{jax.device_count()}: it continues the same run up to float32 summation order, not '
              'bitwise (docs/reliability.md, "Device count").', flush=True)
      return state, step
    raise errors.CheckpointError(
        f'No checkpoint in {self.directory} could be restored (nothing was moved or deleted):\n  '
        + '\n  '.join(reason for _, reason in failures) +
        '\nIf the files are damaged, move the bad step folders out of the way to resume from an '
        'older one, or start over with a new --workdir; if the code or config changed since they '
        'were written, use the version that wrote them.')

  def restore_config(self, step: int | None = None) -> dict:
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))['config']

  def _integrity_record(self, step: int) -> dict | None:
    path = self.directory / str(step) / '_CHECKPOINT_METADATA'
    try:
      text = path.read_text()
    except FileNotFoundError:
      return None
    try:
      return json.loads(text).get('custom_metadata', {}).get(INTEGRITY_KEY)
    except (ValueError, AttributeError) as e:
      raise errors.CheckpointError(
          f'Checkpoint step {step} in {self.directory} is damaged: its _CHECKPOINT_METADATA does '
          f'not parse ({e}).') from e

  def _check_files(self, step: int) -> None:
    """The files orbax needs to even start (an empty step folder, a deleted `_METADATA`)."""
    meta = self.directory / str(step) / 'state' / '_METADATA'
    try:
      json.loads(meta.read_text())
    except FileNotFoundError:
      raise errors.CheckpointError(f'Checkpoint step {step} in {self.directory} is incomplete: '
                                   f'{meta.relative_to(self.directory)} is missing.') from None
    except (OSError, ValueError) as e:
      raise errors.CheckpointError(f'Checkpoint step {step} in {self.directory} is damaged: '
                                   f'{meta.relative_to(self.directory)} does not parse ({e}).') from e

  def _move_aside(self, step: int) -> paths.epath.Path:
    """Moves a damaged step folder out of orbax's sight (process 0; others wait for it)."""
    target = self.workdir / DAMAGED_DIR / f'{self.directory.name}-{step}-{time.strftime("%Y%m%d-%H%M%S")}'
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      multihost_utils.sync_global_devices(f'dgan_jax_move_aside_{step}')
    return target


def check_writable(directory: paths.PathLike, needed_bytes: int = 0, kept: str = '') -> None:
  """Raises StorageError unless `directory` (created if missing) takes a new file and has room for
  `needed_bytes` (local disks only); `kept` names the intact checkpoints for the message."""
  remote = paths.is_remote(directory)
  directory = paths.path(directory)
  try:
    directory.mkdir(parents=True, exist_ok=True)
    if remote:
      probe = directory / f'.write_probe.{os.getpid()}.{time.time_ns()}'
      probe.write_bytes(b'')
      probe.unlink()
    else:
      fd, probe = tempfile.mkstemp(prefix='.write_probe.', dir=directory)
      os.close(fd)
      os.unlink(probe)
  except OSError as e:
    raise errors.StorageError(
        f'Cannot write checkpoints into {directory}: {e.strerror or e}. Fix the folder\'s '
        'permissions (or the file system: read-only, full), or pass another --workdir; the '
        f'checkpoints already there are untouched{kept}.') from e
  if remote:
    return
  free = shutil.disk_usage(directory).free
  if needed_bytes and free < needed_bytes:
    raise errors.StorageError(
        f'Not enough free space for a checkpoint in {directory}: {free / 2**20:.1f} MiB free, '
        f'about {needed_bytes / 2**20:.1f} MiB needed. Free some space (or lower '
        'train.keep_checkpoints) and run the same command to resume; the checkpoints already '
        f'there are untouched{kept}.')


def quiet_failed_save_aftermath() -> None:
  """After a failed save, orbax's writer coroutines finish on an event loop it already closed and
  each prints an unraisable "RuntimeError: Event loop is closed" traceback (dozens of them).
  The failure itself is reported once by `Checkpointer`; this drops only that exact noise."""
  previous = sys.unraisablehook
  if getattr(previous, 'dgan_jax_quiet', False):
    return

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and 'Event loop is closed' in str(
        unraisable.exc_value):
      return
    previous(unraisable)
  hook.dgan_jax_quiet = True
  sys.unraisablehook = hook


def abstract_like(state, sharding: jax.sharding.Sharding):
  """ShapeDtypeStructs of `state` carrying `sharding`, the restore target orbax needs."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


def _host_leaves(state) -> list:
  """[(key path, numpy array)] of a (replicated) state: one local copy of every leaf."""
  out = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      leaf = leaf.addressable_data(0)
    out.append((jax.tree_util.keystr(path), np.asarray(jax.device_get(leaf))))
  return out


def _crc(array: np.ndarray) -> str:
  data = np.ascontiguousarray(array)
  header = f'{data.dtype.str}{data.shape}'.encode()
  return f'{zlib.crc32(data.reshape(-1).view(np.uint8), zlib.crc32(header)):08x}'


def _short_reason(text: str) -> str:
  """The gist of an orbax/tensorstore message: its first line, without the long spec dumps."""
  line = text.strip().splitlines()[0] if text.strip() else 'unknown error'
  for marker in ('. See full TensorStore details', ' [source locations=', 'TensorStore({'):
    line = line.split(marker)[0]
  return line[:300]

