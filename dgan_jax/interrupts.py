"""SIGTERM and Ctrl-C during training: save a checkpoint at the current step, then exit cleanly.

SIGTERM (preemption, `kill`) and the first SIGINT (Ctrl-C) only set a flag: the loop finishes the
step in progress, saves a checkpoint and returns, so the same command resumes exactly there. A
second Ctrl-C exits at once (code 130) without waiting for the save; the last complete checkpoint
stays the latest one (orbax renames a checkpoint into place only when it is complete).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from dgan_jax import errors


class StopFlag:
  """`set` becomes True on SIGTERM or the first SIGINT; `restore()` puts the old handlers back."""

  def __init__(self):
    self.set = False
    self.signal_name = None
    self._previous = {}
    if threading.current_thread() is threading.main_thread():   # signal() works only there.
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    if self.set and signum == signal.SIGINT:
      print('Second interrupt: exiting now without saving; the last complete checkpoint is kept.',
            file=sys.stderr, flush=True)
      os._exit(errors.EXIT_INTERRUPTED)   # pylint: disable=protected-access
    self.set = True
    self.signal_name = signal.Signals(signum).name
    print(f'{self.signal_name}: finishing the current step, saving a checkpoint and exiting; run '
          'the same command to continue' + (' (Ctrl-C again exits at once).'
                                            if signum == signal.SIGINT else '.'), flush=True)

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
