"""The small files of a run directory, written so that a kill at any moment leaves them readable.

`config.json`, `diffusion_history.json`, `best.json` and `results.json` are replaced atomically
(written to a temporary file in the same folder, flushed to disk, then renamed over the old one),
so a reader sees either the old or the new content, never half of it. `metrics.jsonl` is appended
one line per write; a kill can only cut its last line, which `read_jsonl` skips and the next
`append_jsonl` finishes with a newline first. Readers are tolerant: a damaged file (from an older
version, a disk error or a hand edit) is moved aside to `<name>.damaged` with a warning, and the
caller gets the default instead of a crash that would block every resume.

On a bucket (gs://, dgan_jax/paths.py) there is no rename and no append: a file is written in
place (an object appears whole when it is closed, so readers still never see half of it) and
`metrics.jsonl` is rewritten whole on each append.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

from absl import logging

from dgan_jax import paths


def write_atomic(path: paths.PathLike, text: str) -> None:
  """Replaces `path` with `text` in one step (temp file in the same folder + fsync + rename;
  on a bucket one object write)."""
  if paths.is_remote(path):
    paths.path(path).write_text(text)
    return
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
  _fsync_dir(path.parent)


def write_json(path: paths.PathLike, value: Any, indent: int | None = None) -> None:
  write_atomic(path, json.dumps(value, indent=indent))


def read_json(path: paths.PathLike, default: Any = None) -> Any:
  """The JSON value in `path`; `default` if the file is missing, or damaged (then moved aside)."""
  path = paths.path(path)
  try:
    text = path.read_text()
  except FileNotFoundError:
    return default
  try:
    return json.loads(text)
  except ValueError as e:
    aside = move_aside(path)
    logging.warning('%s is damaged (%s); moved it to %s and continue without it.', path, e, aside)
    return default


def append_jsonl(path: paths.PathLike, record: dict) -> None:
  """Appends one JSON line (after closing a line a killed writer left unfinished)."""
  line = json.dumps(record) + '\n'
  if paths.is_remote(path):
    path = paths.path(path)
    old = path.read_text() if path.exists() else ''
    path.write_text(old + ('\n' if old and not old.endswith('\n') else '') + line)
    return
  path = pathlib.Path(path)
  with open(path, 'a+b') as f:
    f.seek(0, os.SEEK_END)
    if f.tell() > 0:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b'\n':
        line = '\n' + line
    f.write(line.encode())
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: paths.PathLike) -> list:
  """The records of a JSON-lines file; unreadable lines (a cut last line) are skipped."""
  path = paths.path(path)
  if not path.exists():
    return []
  records = []
  with path.open('rb') as f:
    text = f.read().decode(errors='replace')
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except ValueError:
      logging.warning('%s line %d is not valid JSON (cut by a kill?); skipped.', path, number)
  return records


def move_aside(path: paths.PathLike) -> paths.epath.Path:
  """Renames `path` to `<path>.damaged` (`.damaged.1`, ... if taken); never deletes anything."""
  path = paths.path(path)
  target = path.with_name(path.name + '.damaged')
  n = 0
  while target.exists():
    n += 1
    target = path.with_name(f'{path.name}.damaged.{n}')
  path.replace(target)
  return target


def _fsync_dir(folder: pathlib.Path) -> None:
  """Makes a rename in `folder` durable (a no-op where directories cannot be opened)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)
