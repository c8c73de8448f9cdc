"""Endless per-host batches from an `ImageFolder`, loaded ahead in worker threads.

Plain Python threads rather than tf.data: the batch of each step is already fixed by
`StepSchedule`, the work per batch is a numpy gather (in-memory datasets) or PIL decodes (which
release the GIL), and it avoids both TensorFlow's import (~10 s) and the interpreter-exit deadlock
of `tf.numpy_function` inside a live tf.data iterator. Batches come back strictly in step order.

A streamed (decoded per batch) dataset is too large to scan up front, so an image that does not
decode is skipped when first met: the next readable image of the dataset takes its place (the same
substitute on every restart, so resume stays exact), and each skipped file is reported once with
the running count (`skipped`).
"""
import collections
import concurrent.futures
import os
import threading
from typing import Dict, Optional

import numpy as np
from absl import logging

from dgan_jax.data import image_folder
from dgan_jax.data import schedule


class FolderBatches:
  """Iterator of `{'image': uint8 [B, H, W, C], 'label': float32 [B, c_dim]}` from `start_step` on.

  Args:
    folder: the opened dataset.
    step_schedule: which indices/flips each step takes (fixes batch size and host slice).
    start_step: the first step to yield.
    pixels: the whole dataset decoded (`folder.load_all()`), or None to decode per batch.
    prefetch: batches prepared ahead of the consumer (at least 1).
    num_threads: worker threads (default: the CPU count, capped at 8).
  """

  def __init__(self, folder: image_folder.ImageFolder, step_schedule: schedule.StepSchedule,
               start_step: int = 0, pixels: Optional[np.ndarray] = None, prefetch: int = 2,
               num_threads: int = 0):
    self.folder = folder
    self.schedule = step_schedule
    self.pixels = pixels
    self._next_step = start_step
    num_threads = num_threads or min(8, os.cpu_count() or 1)
    # Decoding keeps every worker busy; an in-memory gather needs only the prefetch depth.
    self._depth = max(1, prefetch) + (0 if pixels is not None else num_threads)
    self._pool = concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix='data')
    self._pending = collections.deque()
    self.skipped = {}          # name -> reason, for images that do not decode (streamed only)
    self._skip_lock = threading.Lock()

  def load_step(self, step: int) -> Dict[str, np.ndarray]:
    """The batch of `step` (pure: the same step always gives the same batch)."""
    indices, flips = self.schedule(step)
    images = self.pixels[indices] if self.pixels is not None else self._decode(indices)
    images[flips] = images[flips, :, ::-1]
    return {'image': images, 'label': self.folder.labels[indices]}

  def _decode(self, indices) -> np.ndarray:
    """The images at `indices`; an unreadable one is replaced by the next readable image."""
    try:
      return self.folder.images(indices)
    except image_folder.DatasetError:
      pass
    out = np.empty((len(indices),) + self.folder.image_shape, np.uint8)
    for slot, index in enumerate(indices):
      out[slot] = self._image_or_substitute(int(index))
    return out

  def _image_or_substitute(self, index: int) -> np.ndarray:
    n = self.folder.num_images
    for k in range(n):
      candidate = (index + k) % n
      try:
        return self.folder.image(candidate)
      except image_folder.DatasetError as e:
        self._report(self.folder.names[candidate], e)
    raise image_folder.DatasetError(f'No image of {self.folder.path} decodes.')

  def _report(self, name: str, error: Exception) -> None:
    with self._skip_lock:
      if name in self.skipped:
        return
      self.skipped[name] = str(error)
      count = len(self.skipped)
    logging.warning('Skipping an unreadable image (%d skipped so far; the next readable image '
                    'takes its place): %s', count, error)
    print(f'data: skipped unreadable image {name} ({count} so far): {error}', flush=True)

  def __iter__(self):
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    if self._pool is None:
      raise StopIteration
    while len(self._pending) < self._depth:
      self._pending.append(self._pool.submit(self.load_step, self._next_step))
      self._next_step += 1
    return self._pending.popleft().result()

  def close(self):
    """Stops the workers (pending batches are dropped); the iterator then ends."""
    if self._pool is not None:
      for future in self._pending:
        future.cancel()
      self._pending.clear()
      self._pool.shutdown(wait=True)
      self._pool = None
      self.folder.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass
