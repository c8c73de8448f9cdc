"""Failures a user can act on, told apart from bugs.

Every error here carries a complete message (what is wrong and the fix). The command lines print
it as one clean `error: ...` line and exit with the class's code; any other exception is a bug and
keeps its traceback. The classes also derive from the built-in type a caller would expect
(ValueError, FileNotFoundError, OSError), so `except ValueError` keeps working.

Exit codes: 2 bad input (config, flags, files, workdir in use), 3 training diverged,
4 storage (a checkpoint cannot be written, or none verifies), 130 interrupted.
"""
from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130


class RunError(Exception):
  """Base of the expected failures; `exit_code` is what the command line exits with."""
  exit_code = 1


class UserError(RunError, ValueError):
  """Bad input: a config value, a flag, a file or folder given on the command line."""
  exit_code = 2


class MissingInputError(UserError, FileNotFoundError):
  """A file or run directory that was named does not exist."""


class OutputExistsError(UserError, FileExistsError):
  """An output that must be new already exists."""


class WorkdirLockedError(UserError):
  """Another live process trains into the same workdir."""


class ResumeConfigError(UserError):
  """The given config differs from the saved run's in fields that cannot change on resume."""


class CheckpointMismatchError(UserError):
  """A checkpoint holds another state than the config/code expects (not damage: nothing to skip)."""


class DivergenceError(RunError, FloatingPointError):
  """A loss or parameter became NaN or infinite; no checkpoint was written from that state."""
  exit_code = 3


class StorageError(RunError, OSError):
  """A checkpoint or run file cannot be written (permissions, full disk)."""
  exit_code = 4


class CheckpointError(StorageError):
  """No checkpoint of the run verifies (all damaged), or a named one is damaged."""


def exit_for(error: BaseException) -> None:
  """Prints `error` as one clean message on stderr and ends the process with its exit code.

  Storage errors end with `os._exit`: orbax's non-daemon writer threads of a failed save can
  otherwise keep the interpreter from exiting (they wait for a directory that never appears).
  """
  code = getattr(error, 'exit_code', 1)
  print(f'error: {error}', file=sys.stderr, flush=True)
  sys.stdout.flush()
  if isinstance(error, StorageError):
    os._exit(code)   # pylint: disable=protected-access
  sys.exit(code)


def run_cli(main):
  """Wraps an absl `main(argv)`: RunErrors exit cleanly with their code, Ctrl-C exits 130 without
  a traceback, everything else (a bug) propagates with its traceback."""
  def wrapped(argv):
    try:
      return main(argv)
    except RunError as e:
      exit_for(e)
    except KeyboardInterrupt:
      print('Interrupted.', file=sys.stderr, flush=True)
      sys.exit(EXIT_INTERRUPTED)
  wrapped.__name__ = getattr(main, '__name__', 'main')
  wrapped.__doc__ = main.__doc__
  return wrapped
