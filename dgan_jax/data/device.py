"""Putting host batches onto the device mesh ahead of the training step."""
import collections
import itertools
from typing import Dict, Iterator, Optional

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def batch_sharding(mesh: jax.sharding.Mesh, axis: Optional[str] = None) -> NamedSharding:
  """Shards the leading (batch) dimension over `axis` (default: the mesh's first axis)."""
  return NamedSharding(mesh, P(axis or mesh.axis_names[0]))


def to_global(batch: Dict[str, np.ndarray], sharding: NamedSharding) -> Dict[str, jax.Array]:
  """This host's batch -> global arrays (the global batch is the hosts' batches concatenated)."""
  return {key: jax.make_array_from_process_local_data(sharding, value)
          for key, value in batch.items()}


def prefetch_to_mesh(iterator: Iterator[Dict[str, np.ndarray]], mesh: jax.sharding.Mesh,
                     size: int = 2, axis: Optional[str] = None) -> Iterator[Dict[str, jax.Array]]:
  """Yields the batches as sharded global arrays, keeping `size` transfers in flight.

  The transfers are asynchronous, so the next batches travel while the current step runs.
  The local batch must divide evenly over this host's devices on `axis`.
  """
  if size < 1:
    raise ValueError(f'prefetch size must be >= 1, got {size}.')
  sharding = batch_sharding(mesh, axis)
  queue = collections.deque()
  iterator = iter(iterator)
  for batch in itertools.islice(iterator, size):
    queue.append(to_global(batch, sharding))
  while queue:
    yield queue.popleft()
    for batch in itertools.islice(iterator, 1):
      queue.append(to_global(batch, sharding))
