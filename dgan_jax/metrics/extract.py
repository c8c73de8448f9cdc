"""Feature extraction sharded over all devices, streaming fixed-size batches, with a progress bar.

A `FeatureNet` is a pure `apply(variables, uint8 NHWC) -> {name: [N, ...]}` plus its variables.
`FeatureExtractor` jit-compiles it once for a fixed global batch whose leading axis is sharded
over a 1-D ('data',) mesh of every device (variables replicated), pads the last partial batch and
drops the padding from the results, so any image count works with a single compilation.
"""
import dataclasses
import math
from typing import Any, Callable, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

Features = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureNet:
  """A feature network for the metrics.

  name: identifies the network in cache keys (e.g. 'inception-2015-12-05', 'vgg16').
  apply: pure `(variables, uint8 NHWC images) -> dict of float arrays [N, ...]`. Inception gives
    'features' [N, 2048] and 'logits' [N, 1008] (no output bias); VGG16 gives 'features' [N, 4096];
    a domain network gives at least 'features'.
  variables: the network's variables (any pytree).
  """
  name: str
  apply: Callable[[Any, jax.Array], Mapping[str, jax.Array]]
  variables: Any


def to_uint8(images: jax.Array) -> jax.Array:
  """Generator output in [-1, 1] -> uint8 as the reference: uint8(clip(x * 127.5 + 128, 0, 255)).

  The cast truncates, so this rounds half up on the [0, 255] scale.
  """
  return jnp.clip(images * 127.5 + 128.0, min=0.0, max=255.0).astype(jnp.uint8)


def data_mesh(devices=None) -> Mesh:
  """1-D ('data',) mesh over `devices` (default: all), with Auto axis types (see jax-notes)."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices, ('data',), axis_types=(jax.sharding.AxisType.Auto,))


def _rebatch(batches: Iterable[np.ndarray], batch_size: int,
             max_items: int | None) -> Iterator[tuple[np.ndarray, int]]:
  """Re-cuts a stream of image batches into (batch of exactly `batch_size`, number valid)."""
  pending: list[np.ndarray] = []
  have = 0
  seen = 0
  for batch in batches:
    batch = np.asarray(batch)
    if max_items is not None:
      batch = batch[:max_items - seen]
    seen += batch.shape[0]
    if batch.shape[0]:
      pending.append(batch)
      have += batch.shape[0]
    while have >= batch_size:
      joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
      yield joined[:batch_size], batch_size
      rest = joined[batch_size:]
      pending, have = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
    if max_items is not None and seen >= max_items:
      break
  if have:
    joined = np.concatenate(pending)
    pad = np.zeros((batch_size - have,) + joined.shape[1:], joined.dtype)
    yield np.concatenate([joined, pad]), have


class FeatureExtractor:
  """Runs a FeatureNet on global batches sharded over a ('data',) mesh."""

  def __init__(self, net: FeatureNet, batch_size: int = 256, mesh: Mesh | None = None):
    self.net = net
    self.mesh = mesh if mesh is not None else data_mesh()
    n_dev = self.mesh.devices.size
    if batch_size < 1:
      raise ValueError(f'batch_size must be positive, got {batch_size}')
    self.batch_size = int(math.ceil(batch_size / n_dev) * n_dev)  # Divisible by the devices.
    self._data = NamedSharding(self.mesh, P('data'))
    replicated = NamedSharding(self.mesh, P())
    self._variables = jax.device_put(net.variables, replicated)
    self._fn = jax.jit(net.apply, in_shardings=(replicated, self._data),
                       out_shardings=self._data)

  def __call__(self, images: np.ndarray) -> Features:
    """Features of one batch of any size (padded internally)."""
    return self.run([images], num_items=np.shape(images)[0], progress=False)

  def stream(self, batches: Iterable[np.ndarray], max_items: int | None = None
             ) -> Iterator[Features]:
    """Yields host feature dicts batch by batch; the next batch is dispatched before the last
    result is copied to the host, so the device never waits for the transfer.

    With several processes (multi-host), each process streams its own share of the images
    (`max_items` is the global count) and every process receives all processes' features.
    """
    if jax.process_count() > 1:
      yield from self._stream_multiprocess(batches, max_items)
      return
    pending = None
    for images, valid in _rebatch(batches, self.batch_size, max_items):
      if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f'{self.net.name}: expected uint8 NHWC image batches, got '
                         f'{images.dtype} {images.shape}')
      out = self._fn(self._variables, jax.device_put(images, self._data))
      if pending is not None:
        yield _to_host(*pending)
      pending = (out, valid)
    if pending is not None:
      yield _to_host(*pending)

  def _stream_multiprocess(self, batches, max_items):
    """Multi-host stream: steps continue while any process has data; the padding of every
    process's part of the global batch is dropped after the all-gather."""
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    n_proc, index = jax.process_count(), jax.process_index()
    local_bs = self.batch_size // n_proc
    local_max = None if max_items is None else local_share(max_items, n_proc, index)
    local = _rebatch(batches, local_bs, local_max)
    while True:
      item = next(local, None)
      info = np.zeros(5, np.int64)
      if item is not None:
        info[:] = (1, item[1], *item[0].shape[1:])
      infos = np.asarray(multihost_utils.process_allgather(info)).reshape(n_proc, 5)
      if not infos[:, 0].any():
        return
      if item is None:
        shape = tuple(int(v) for v in infos[np.argmax(infos[:, 0]), 2:])
        images = np.zeros((local_bs,) + shape, np.uint8)
      else:
        images = item[0]
      global_images = jax.make_array_from_process_local_data(self._data, images)
      out = self._fn(self._variables, global_images)
      gathered = multihost_utils.process_allgather(out, tiled=True)
      keep = np.concatenate([np.arange(p * local_bs, p * local_bs + infos[p, 1])
                             for p in range(n_proc)])
      yield {k: np.asarray(v)[keep] for k, v in gathered.items()}

  def run(self, batches: Iterable[np.ndarray], num_items: int | None = None,
          progress: bool = True, desc: str = '', consumers: Iterable[Callable] = ()) -> Features:
    """Extracts features of the first `num_items` images of `batches`.

    Without consumers the features are concatenated and returned; with consumers each host batch
    is handed to every consumer (e.g. a moment accumulator) and nothing is kept.
    """
    consumers = list(consumers)
    kept: list[Features] = []
    bar = _progress(num_items, desc or self.net.name, progress)
    for feats in self.stream(batches, num_items):
      for consume in consumers:
        consume(feats)
      if not consumers:
        kept.append(feats)
      bar.update(next(iter(feats.values())).shape[0])
    bar.close()
    if consumers:
      return {}
    if not kept:
      raise ValueError(f'{self.net.name}: the image stream was empty')
    return {k: np.concatenate([f[k] for f in kept]) for k in kept[0]}


def _to_host(out: Mapping[str, jax.Array], valid: int) -> Features:
  return {k: np.asarray(v)[:valid] for k, v in out.items()}


def _progress(total, desc, enabled):
  enabled = enabled and jax.process_index() == 0
  try:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    return tqdm(total=total, desc=desc, unit='img', disable=not enabled, leave=False)
  except ImportError:
    return _NoBar()


class _NoBar:
  def update(self, n):
    del n

  def close(self):
    pass


def local_share(total: int, num_processes: int, index: int) -> int:
  """How many of `total` items process `index` handles (the first `total % n` get one more)."""
  return total // num_processes + (1 if index < total % num_processes else 0)


def generated_batches(generate_fn: Callable[[jax.Array, int], Any], key: jax.Array,
                      num: int, batch_size: int) -> Iterator[np.ndarray]:
  """Calls `generate_fn(fold_in(key, i), batch_size)` until `num` uint8 NHWC images were made.

  Multi-host: `num` and `batch_size` are global; each process makes its share with keys folded
  with its process index, so no two processes draw the same latents.
  """
  n_proc, index = jax.process_count(), jax.process_index()
  if n_proc > 1:
    num, batch_size = local_share(num, n_proc, index), max(1, batch_size // n_proc)
    key = jax.random.fold_in(key, 1_000_003 + index)
  made = 0
  i = 0
  while made < num:
    images = np.asarray(generate_fn(jax.random.fold_in(key, i), batch_size))
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f'generate_fn must return uint8 NHWC images, got {images.dtype} '
                       f'{images.shape}; convert with dgan_jax.metrics.extract.to_uint8.')
    yield images[:num - made]
    made += images.shape[0]
    i += 1
