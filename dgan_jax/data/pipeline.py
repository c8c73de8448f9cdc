"""Training input pipeline: endless, shuffled, x-flipped, per-host batches of uint8 NHWC images.

`make_train_iterator(config.data, global_batch, seed, process_index, process_count, start_step)`
yields `{'image': uint8 [local_batch, H, W, C], 'label': float32 [local_batch, c_dim]}` with
`local_batch = global_batch // process_count`. `dataset_info(config.data)` gives the shape facts
the models are built from without building the pipeline.

Sources (`config.data.source`):
* 'zip': a stylegan2-ada folder or zip (`config.data.path`). The batch at each step is chosen by
  `schedule.StepSchedule` (seeded per epoch, O(1) exact resume, host-count independent); small
  datasets (<= `IN_MEMORY_LIMIT_BYTES` decoded, e.g. CIFAR-10) are decoded once into memory,
  larger ones are decoded per batch; worker threads prepare `config.data.prefetch` batches ahead.
* 'tfds': a named tensorflow-datasets dataset (see `tfds_source`).
"""
import concurrent.futures
import dataclasses
import os
from typing import Dict, Iterator

import ml_collections
import numpy as np

from dgan_jax import errors
from dgan_jax.data import folder_batches
from dgan_jax.data import image_folder
from dgan_jax.data import schedule

IN_MEMORY_LIMIT_BYTES = 2 << 30  # Decode a folder/zip dataset up front when it fits in 2 GiB.
SOURCES = ('zip', 'tfds')


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the models need to know about a dataset."""
  resolution: int
  channels: int
  c_dim: int
  num_images: int


def import_tensorflow():
  """Imports TensorFlow for tf.data with its GPUs hidden (JAX owns the accelerators)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # Already initialised: the devices were hidden by an earlier call.
    pass
  return tf


def validate_data_config(data_config) -> None:
  """Raises ValueError, naming the field and the fix, for a config the pipeline cannot use."""
  if data_config.source not in SOURCES:
    raise errors.UserError(f'config.data.source={data_config.source!r} is not an image dataset source; '
                     f'use one of {SOURCES} (toy25 data comes from the toy experiment).')
  if data_config.source == 'zip' and not data_config.path:
    raise errors.UserError("config.data.source='zip' needs --config.data.path=<folder or .zip> "
                     '(e.g. ../shared/data/cifar10/train.zip).')
  if data_config.source == 'tfds' and not data_config.name:
    raise errors.UserError("config.data.source='tfds' needs --config.data.name (e.g. cifar10, stl10, "
                     'celeb_a, lsun/church_outdoor).')
  if data_config.max_images is not None and data_config.max_images < 0:
    raise errors.UserError(f'config.data.max_images={data_config.max_images} must be >= 0 (0 = all).')
  if data_config.prefetch < 0 or data_config.shuffle_buffer < 0:
    raise errors.UserError('config.data.prefetch and config.data.shuffle_buffer must be >= 0.')


def open_image_folder(data_config, seed: int = 0) -> image_folder.ImageFolder:
  """Opens `config.data.path` with the config's resolution, labels and max_images subset."""
  folder = image_folder.ImageFolder(
      data_config.path, resolution=data_config.resolution, use_labels=data_config.use_labels,
      max_images=data_config.max_images, seed=seed)
  if folder.channels != data_config.channels:
    raise image_folder.DatasetError(
        f'{data_config.path} has {folder.channels}-channel images but config.data.channels='
        f'{data_config.channels}; set --config.data.channels={folder.channels}.')
  return folder


def dataset_info(data_config) -> DatasetInfo:
  """(resolution, channels, c_dim, num_images) of the configured dataset, without decoding it."""
  validate_data_config(data_config)
  if data_config.source == 'tfds':
    from dgan_jax.data import tfds_source  # pylint: disable=import-outside-toplevel
    return tfds_source.tfds_info(data_config)
  folder = open_image_folder(data_config)
  info = DatasetInfo(folder.resolution, folder.channels, folder.c_dim, folder.num_images)
  folder.close()
  return info


def label_distribution(data_config, seed: int = 0):
  """(labels [K, c_dim] float32, probabilities [K]) of the training set's distinct labels.

  The reference draws the label of each generated sample as the label of a uniformly drawn
  training item (`all_gen_c`), i.e. from this empirical distribution (of the `max_images` subset
  when one is used; x-flips do not change it). None for an unlabelled config.
  """
  validate_data_config(data_config)
  if not data_config.use_labels:
    return None
  if data_config.source == 'tfds':
    from dgan_jax.data import tfds_source  # pylint: disable=import-outside-toplevel
    labels = tfds_source.training_labels(data_config, seed)
  else:
    folder = open_image_folder(data_config, seed)
    labels = folder.labels
    folder.close()
  if labels.shape[1] == 0:
    return None
  unique, counts = np.unique(labels.astype(np.float32), axis=0, return_counts=True)
  return unique, (counts / counts.sum()).astype(np.float64)


def make_train_iterator(data_config, global_batch: int, seed: int, process_index: int = 0,
                        process_count: int = 1, start_step: int = 0
                        ) -> Iterator[Dict[str, np.ndarray]]:
  """Endless iterator of this host's batches, starting at training step `start_step`.

  The same (config, global_batch, seed, start_step) always gives the same batches, so a run
  resumed at step k continues exactly as the uninterrupted run. `seed` also picks the
  `max_images` subset (the reference's `random_seed`).
  """
  validate_data_config(data_config)
  if global_batch <= 0 or global_batch % process_count:
    raise ValueError(f'global batch {global_batch} must be a positive multiple of the process count '
                     f'{process_count}; change --config.train.batch_size.')
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}.')
  if data_config.source == 'tfds':
    from dgan_jax.data import tfds_source  # pylint: disable=import-outside-toplevel
    return tfds_source.make_tfds_iterator(data_config, global_batch // process_count, seed,
                                          process_index, process_count, start_step)
  folder = open_image_folder(data_config, seed)
  step_schedule = schedule.StepSchedule(
      folder.num_images, global_batch, seed, xflip=data_config.xflip,
      process_index=process_index, process_count=process_count)
  in_memory = folder.num_images * int(np.prod(folder.image_shape)) <= IN_MEMORY_LIMIT_BYTES
  pixels = folder.load_all() if in_memory else None
  return folder_batches.FolderBatches(folder, step_schedule, start_step, pixels,
                                      prefetch=data_config.prefetch)


def eval_num_batches(num_images: int, batch_size: int, process_count: int = 1) -> int:
  """Batches every host yields in `make_eval_iterator` (the same on all hosts)."""
  per_host = -(-num_images // process_count)
  return -(-per_host // batch_size)


def make_eval_iterator(data_config, batch_size: int, process_index: int = 0,
                       process_count: int = 1) -> Iterator[Dict[str, np.ndarray]]:
  """Every real image once, in dataset order, for metrics such as fid50k_full.

  As the reference's metrics do (`max_size=None, xflip=False`): the whole dataset, whatever
  `max_images` and `xflip` say. Host p gets images p, p + P, p + 2P, ... (the reference's rank
  striding). All hosts yield `eval_num_batches(...)` full batches; `valid` (bool [batch_size])
  marks the real rows, padding rows are zeros and must be dropped from the statistics.
  """
  validate_data_config(data_config)
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} is not in [0, {process_count}).')
  full = ml_collections.ConfigDict(data_config)  # A copy (also of a frozen config).
  full.max_images = 0
  if data_config.source == 'tfds':
    from dgan_jax.data import tfds_source  # pylint: disable=import-outside-toplevel
    return tfds_source.make_tfds_eval_iterator(full, batch_size, process_index, process_count)
  return _folder_eval_batches(open_image_folder(full), batch_size, process_index, process_count)


def _folder_eval_batches(folder: image_folder.ImageFolder, batch_size: int, process_index: int,
                         process_count: int) -> Iterator[Dict[str, np.ndarray]]:
  indices = np.arange(process_index, folder.num_images, process_count)
  num_batches = eval_num_batches(folder.num_images, batch_size, process_count)
  padded = np.full(num_batches * batch_size, -1, np.int64)
  padded[:len(indices)] = indices
  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    for batch in padded.reshape(num_batches, batch_size):
      valid = batch >= 0
      images = np.zeros((batch_size,) + folder.image_shape, np.uint8)
      images[valid] = folder.images(batch[valid], pool)
      labels = np.zeros((batch_size, folder.c_dim), np.float32)
      labels[valid] = folder.labels[batch[valid]]
      yield {'image': images, 'label': labels, 'valid': valid}
  folder.close()
