"""One writer per run directory: `<workdir>/.lock`, held for as long as a training process runs.

The lock is an exclusive `flock` on the file, which the kernel drops when its process dies however
it dies (kill -9 included), so a lock left behind by a dead process is never mistaken for a live
one. The file names its holder (pid, host, start time) for the message a second process gets, and
for the note when a new run takes over the file a killed one left behind. Only process 0 of a
multi-host run takes it (all hosts of one run share the workdir).

A bucket (gs://) has no flock: there the lock does nothing (with a note), and keeping one writer
per workdir is up to whoever starts the runs (launch/tpu_vm.sh runs one job per TPU; docs/launch.md).
"""
from __future__ import annotations

import fcntl
import json
import os
import pathlib
import socket
import time

from absl import logging

from dgan_jax import errors, paths

LOCK_NAME = '.lock'


class WorkdirLock:
  """`acquire()` or raise WorkdirLockedError; `release()` (also as a context manager)."""

  def __init__(self, workdir: paths.PathLike):
    self.remote = paths.is_remote(workdir)
    self.path = paths.path(workdir) / LOCK_NAME if self.remote else pathlib.Path(workdir) / LOCK_NAME
    self._fd = None
    self.took_over = None    # The holder record of a dead process whose lock file we took over.

  def acquire(self) -> 'WorkdirLock':
    if self.remote:
      logging.info('%s is in a bucket, which has no file locks: not locked (one writer per '
                   'workdir is up to the launcher; docs/launch.md).', self.path.parent)
      return self
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise errors.WorkdirLockedError(_locked_message(self.path.parent, holder)) from None
      # The holder may have released and deleted the file between our open and flock: then we
      # locked an unlinked file; start again on the current one.
      try:
        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    previous = _read_holder(fd)
    if previous:
      self.took_over = previous
      logging.warning('%s', self.takeover_note())
      print(self.takeover_note(), flush=True)
    record = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def takeover_note(self) -> str:
    h = self.took_over or {}
    return (f'Took over the stale lock {self.path} of process {h.get("pid")} on '
            f'{h.get("host")} (started {_when(h.get("started"))}), which is no longer running '
            '(killed?); its run continues from its last checkpoint.')

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      self.path.unlink()
    except FileNotFoundError:
      pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _read_holder(fd: int) -> dict | None:
  try:
    data = os.pread(fd, 4096, 0)
    return json.loads(data) if data.strip() else None
  except (OSError, ValueError):
    return {'pid': '?', 'host': '?'}


def _when(stamp) -> str:
  return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp)) if stamp else 'at an unknown time'


def _locked_message(workdir: pathlib.Path, holder: dict | None) -> str:
  h = holder or {}
  who = f'process {h.get("pid", "?")} on {h.get("host", "?")} (started {_when(h.get("started"))})'
  if h.get('pid') == os.getpid() and h.get('host') == socket.gethostname():
    who = 'this process (a training call that is still running)'
  return (f'{workdir} is in use: {who} is training into it. Two writers would overwrite each '
          'other\'s checkpoints. Wait for it to finish, stop it (Ctrl-C or SIGTERM saves a '
          'checkpoint, then resume with the same command), or pass another --workdir.')
