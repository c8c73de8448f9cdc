"""Which images (and which x-flips) make up each training step: a pure function of (seed, step).

The sample stream is an endless sequence of epochs; epoch `e` is a permutation, drawn from
`np.random.default_rng((seed, e))`, of the dataset's items. With x-flip on, the items are the
reference's doubled dataset: `N` plain images followed by the same `N` flipped (so every image is
seen once each way per epoch, as `Dataset(xflip=True)` in the reference). Step `s` takes the
`global_batch` items at stream positions `[s * global_batch, (s + 1) * global_batch)`, and host `p`
of `P` takes the `p`-th contiguous slice of that global batch, so:

* resuming at step `k` is O(1) and gives exactly the batches of the uninterrupted run;
* the global batch does not depend on how many hosts there are (the union of the host slices is
  the single-host batch), and hosts read disjoint images within a step.
"""
import functools
from typing import Tuple

import numpy as np


class StepSchedule:
  """Maps a training step to this host's dataset indices and flip flags."""

  def __init__(self, num_images: int, global_batch: int, seed: int, *, xflip: bool,
               process_index: int = 0, process_count: int = 1):
    if num_images <= 0:
      raise ValueError(f'num_images must be positive, got {num_images}.')
    if global_batch <= 0 or global_batch % process_count:
      raise ValueError(f'global batch {global_batch} must be a positive multiple of the process '
                       f'count {process_count}; change --config.train.batch_size.')
    if not 0 <= process_index < process_count:
      raise ValueError(f'process_index {process_index} is not in [0, {process_count}).')
    self.num_images = num_images
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self.seed = seed
    self.xflip = xflip
    self.process_index = process_index
    self.epoch_size = num_images * (2 if xflip else 1)

  @functools.lru_cache(maxsize=4)
  def _epoch_order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng((self.seed, epoch)).permutation(self.epoch_size)

  def __call__(self, step: int) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (image indices int64 [local_batch], flip flags bool [local_batch]) of `step`."""
    start = step * self.global_batch + self.process_index * self.local_batch
    positions = np.arange(start, start + self.local_batch, dtype=np.int64)
    epochs, offsets = np.divmod(positions, self.epoch_size)
    items = np.empty_like(positions)
    for epoch in np.unique(epochs):
      mask = epochs == epoch
      items[mask] = self._epoch_order(int(epoch))[offsets[mask]]
    return items % self.num_images, items >= self.num_images
