"""A fake Google Cloud Storage for tests: `gs://<bucket>/<key>` lands in a local folder.

Every library that touches a run's storage is pointed at the folder, each at its own GCS entry
point, so dgan_jax and orbax still take their gs:// code paths (no atomic renames, no flock, no
disk-usage probe, orbax's GCS commit protocol and its TensorStore kvstore):
* etils.epath (dgan_jax.paths, and orbax's directory work): its gs:// backend is replaced by the
  local one with `gs://` rewritten to the folder (and back in glob/walk/listdir results);
* TensorStore (orbax's arrays): orbax's GCS kvstore spec becomes a `file` spec in the folder, and
  the bucket is a plain (not hierarchical-namespace) one;
* TensorFlow's event writer (clu's SummaryWriter): its logdir is rewritten.
"""
from __future__ import annotations

import contextlib
import os
from unittest import mock

from etils.epath import gpath
from etils.epath import testing as epath_testing

PREFIX = 'gs://'


@contextlib.contextmanager
def fake_gcs(root: str | os.PathLike):
  """Within the block, gs://... paths are read and written under `root`."""
  root = os.fspath(root).rstrip('/')

  def local(path) -> str:
    text = os.fspath(path)
    return root + '/' + text[len(PREFIX):] if text.startswith(PREFIX) else text

  def remote(text: str) -> str:
    return PREFIX + text[len(root) + 1:] if text.startswith(root + '/') else text

  def mapped(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  def mapped_pair(original, src, dst, *args, **kwargs):
    return original(local(src), local(dst), *args, **kwargs)

  def glob(original, pattern):
    return [remote(p) for p in original(local(pattern))]

  def walk(original, top, **kwargs):
    for folder, dirs, files in original(local(top), **kwargs):
      yield remote(os.fspath(folder)), dirs, files

  def kvstore(path: str) -> dict:
    return {'driver': 'file', 'path': local(path)}

  from orbax.checkpoint._src.path import gcs_utils  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  create_writer = tf.summary.create_file_writer
  with contextlib.ExitStack() as stack:
    stack.enter_context(epath_testing.mock_epath(
        open=mapped, exists=mapped, isdir=mapped, listdir=mapped, makedirs=mapped, mkdir=mapped,
        remove=mapped, rmtree=mapped, stat=mapped, glob=glob, walk=walk, rename=mapped_pair,
        replace=mapped_pair, copy=mapped_pair))
    # epath picks TensorFlow's gfile for gs:// when TF is installed; the mock replaces the others.
    stack.enter_context(mock.patch.object(gpath, '_is_tf_installed', lambda: False))
    stack.enter_context(mock.patch.object(gcs_utils, 'get_kvstore_for_gcs', kvstore))
    stack.enter_context(mock.patch.object(gcs_utils, 'is_hierarchical_namespace_enabled',
                                          lambda path: False))
    stack.enter_context(mock.patch.object(
        tf.summary, 'create_file_writer', lambda logdir, *a, **k: create_writer(local(logdir), *a, **k)))
    yield root
