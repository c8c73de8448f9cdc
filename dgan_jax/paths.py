"""One path type for run folders on a local disk or in a bucket (gs://, s3://): etils.epath.

Every file of a run (orbax checkpoints, TensorBoard events, sample grids, metrics.jsonl,
config.json, the diffusion history, the FID statistics cache) is reached through `path(...)`, so
`--workdir=gs://bucket/run` or `eval.cache_dir=gs://...` works wherever a local folder does; orbax
and TensorFlow's event writer take the same gs:// string natively.

What differs on a bucket (docs/launch.md, "Cloud storage"), handled by the callers via `is_remote`:
* no rename: a bucket object is written whole and appears on close (a reader sees the old or the
  new object, never half of one), so files are written in place instead of temp file + rename;
  a "move" is a copy and a delete;
* no append: `metrics.jsonl` is read and written whole;
* no flock and no free-space figure: the workdir lock and the disk-space check are local only.
"""
from __future__ import annotations

import os
from typing import Union

from etils import epath

REMOTE_PREFIXES = ('gs://', 's3://', 'az://', 'hf://')

PathLike = Union[str, os.PathLike]


def is_remote(p: PathLike) -> bool:
  """True for an object-store URI (gs://, s3://, ...), False for a local path."""
  return os.fspath(p).startswith(REMOTE_PREFIXES)


def path(p: PathLike) -> epath.Path:
  """`p` as an epath.Path: local paths with `~` expanded, URIs as they are."""
  result = epath.Path(p)
  return result if is_remote(result) else result.expanduser()

