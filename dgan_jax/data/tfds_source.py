"""Named datasets from tensorflow-datasets (`config.data.source='tfds'`, `config.data.name`).

Every image is center-cropped to a square (the shorter side) and resized to
`config.data.resolution` (Lanczos-3, antialiased; a no-op when it already has that size), so:
`cifar10` (train, 32), `stl10` (the 100k `unlabelled` split, 96 -> e.g. 64 or 32),
`celeb_a` (train, 218x178 -> 178 crop -> e.g. 64), `lsun/<category>` (train, -> resolution).
Other tfds image datasets with a `train` split work the same way.

Determinism: files are read in order; epoch `e` is shuffled with a buffer of
`config.data.shuffle_buffer` and the seed (seed, e); images are decoded after the shuffle, so a
resume at step k skips at most one epoch of encoded records. x-flip: each sample is flipped with
probability 0.5 from a stateless draw keyed by (seed, step, host), the statistically equivalent
form of the reference's doubled dataset. Hosts read disjoint parts (`tfds.split_for_jax_process`).
"""
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from dgan_jax.data import image_folder
from dgan_jax.data import pipeline

# Dataset name (before any '/config') -> the split to train on; default 'train'.
TRAIN_SPLITS = {'stl10': 'unlabelled'}
_SEED_STRIDE = 1_000_003  # Combines (seed, epoch) into one shuffle seed.


def train_split(name: str) -> str:
  return TRAIN_SPLITS.get(name.split('/')[0], 'train')


def _tfds():
  pipeline.import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  return tfds


def _builder(name: str):
  tfds = _tfds()
  try:
    return tfds.builder(name)
  except Exception as e:  # tfds raises several types (DatasetNotFoundError, ValueError, ...).
    raise image_folder.DatasetError(
        f'tfds dataset {name!r} not found ({e}). Check --config.data.name (e.g. cifar10, stl10, '
        'celeb_a, lsun/church_outdoor).') from e


def _load(name: str, split: str):
  """The split's records with the image left encoded (decoded after shuffle/skip)."""
  tfds = _tfds()
  try:
    return tfds.load(name, split=split, shuffle_files=False, download=False,
                     decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # pylint: disable=broad-except
    raise image_folder.DatasetError(
        f'tfds dataset {name!r} split {split!r} cannot be loaded ({e}). Prepare it first, e.g. '
        f'`tfds build {name}` (set TFDS_DATA_DIR for a custom location).') from e


def _num_labels(builder, data_config) -> int:
  """c_dim: the `label` ClassLabel size when labels are used, else 0."""
  if not data_config.use_labels:
    return 0
  tfds = _tfds()
  features = builder.info.features
  label = features['label'] if 'label' in features else None
  if not isinstance(label, tfds.features.ClassLabel) or train_split(data_config.name) == 'unlabelled':
    raise image_folder.DatasetError(
        f'tfds dataset {data_config.name!r} ({train_split(data_config.name)} split) has no class '
        'labels; set --config.data.use_labels=False.')
  return label.num_classes


def _split_size(builder, name: str) -> int:
  """Number of records in the training split (counted when the dataset is mocked)."""
  split = train_split(name)
  if split in builder.info.splits:
    return builder.info.splits[split].num_examples
  records = _load(name, split)
  count = int(records.cardinality().numpy())
  return count if count >= 0 else sum(1 for _ in records)


def tfds_info(data_config) -> 'pipeline.DatasetInfo':
  """DatasetInfo of a named tfds dataset after the crop/resize to config.data.resolution."""
  builder = _builder(data_config.name)
  image = builder.info.features['image']
  channels = image.shape[-1]
  if channels != data_config.channels:
    raise image_folder.DatasetError(
        f'tfds dataset {data_config.name!r} has {channels}-channel images but config.data.channels='
        f'{data_config.channels}; set --config.data.channels={channels}.')
  _check_resolution(data_config.resolution)
  num_images = _split_size(builder, data_config.name)
  if data_config.max_images:
    num_images = min(num_images, data_config.max_images)
  return pipeline.DatasetInfo(data_config.resolution, channels, _num_labels(builder, data_config),
                              num_images)


def training_labels(data_config, seed: int = 0) -> np.ndarray:
  """One-hot labels [N, c_dim] of the training split (its `max_images` subset when set)."""
  builder = _builder(data_config.name)
  c_dim = _num_labels(builder, data_config)
  records = _load(data_config.name, train_split(data_config.name))
  ids = np.fromiter((int(r['label']) for r in records.map(lambda r: {'label': r['label']})
                     .as_numpy_iterator()), np.int64)
  mask = _subset_mask(len(ids), data_config.max_images, seed)
  if mask is not None:
    ids = ids[mask]
  return np.eye(c_dim, dtype=np.float32)[ids]


def _check_resolution(resolution: int):
  if resolution < 4 or resolution & (resolution - 1):
    raise image_folder.DatasetError(
        f'config.data.resolution={resolution} must be a power of two >= 4 (tfds images are '
        'cropped and resized to it).')


def _subset_mask(num_examples: int, max_images: int, seed: int) -> Optional[np.ndarray]:
  """The reference's max_size choice (RandomState(seed).shuffle, first max_images) as a mask."""
  if not max_images or max_images >= num_examples:
    return None
  order = np.arange(num_examples)
  np.random.RandomState(seed).shuffle(order)
  mask = np.zeros(num_examples, bool)
  mask[order[:max_images]] = True
  return mask


def _host_records(data_config, seed: int, process_index: int, process_count: int
                  ) -> Tuple[object, int]:
  """(this host's encoded records, their count)."""
  tfds = _tfds()
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  name, split = data_config.name, train_split(data_config.name)
  total = _split_size(_builder(name), name)
  mask = _subset_mask(total, data_config.max_images, seed)
  if mask is None:
    host_split = tfds.split_for_jax_process(split, process_index=process_index,
                                            process_count=process_count, drop_remainder=True)
    records = _load(name, host_split)
    count = int(records.cardinality().numpy())
    return records, count if count >= 0 else total // process_count
  # Limited-data subset: pick the reference's images, then deal them out to the hosts.
  kept = np.flatnonzero(mask)
  per_host = len(kept) // process_count
  if per_host == 0:
    raise image_folder.DatasetError(f'max_images={data_config.max_images} is smaller than the '
                                    f'process count {process_count}.')
  host_of = np.full(total, -1, np.int64)
  host_of[kept[:per_host * process_count]] = np.arange(per_host * process_count) % process_count
  host_table = tf.constant(host_of)
  records = _load(name, split).enumerate().filter(
      lambda i, _: tf.gather(host_table, i) == process_index).map(lambda _, record: record)
  return records, per_host


def make_tfds_dataset(data_config, local_batch: int, seed: int, process_index: int = 0,
                      process_count: int = 1, start_step: int = 0):
  """tf.data.Dataset of this host's batches {'image': uint8 NHWC, 'label': float32 [B, c_dim]}."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  info = tfds_info(data_config)
  records, count = _host_records(data_config, seed, process_index, process_count)
  resolution, channels, c_dim = info.resolution, info.channels, info.c_dim

  def keep_fields(record):
    label = record['label'] if c_dim else tf.constant(0, tf.int64)
    return record['image'], label

  records = records.map(keep_fields)
  start = start_step * local_batch
  start_epoch, offset = divmod(start, count)
  buffer = max(1, data_config.shuffle_buffer)

  def epoch_records(epoch):
    return records.shuffle(buffer, seed=seed * _SEED_STRIDE + epoch, reshuffle_each_iteration=False)

  stream = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch_records)
  stream = stream.skip(offset)

  def decode(encoded, label):
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = center_crop_resize(image, resolution)
    one_hot = tf.one_hot(label, c_dim, dtype=tf.float32) if c_dim else tf.zeros([0], tf.float32)
    return image, one_hot

  stream = stream.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(local_batch, drop_remainder=True)
  steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)

  def flip(step, batch):
    images, labels = batch
    if data_config.xflip:
      key = tf.stack([tf.constant(seed, tf.int64), step * process_count + process_index])
      flips = tf.random.stateless_uniform([local_batch], seed=key) < 0.5
      images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return {'image': images, 'label': labels}

  return tf.data.Dataset.zip(steps, stream).map(flip, num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)


def center_crop_resize(image, resolution: int):
  """Center-crops an HWC uint8 tensor to a square and resizes it (Lanczos-3) to `resolution`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.minimum(height, width)
  image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)

  def resize():
    resized = tf.image.resize(image, [resolution, resolution], method='lanczos3', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  image = tf.cond(tf.equal(side, resolution), lambda: image, resize)
  return tf.ensure_shape(image, [resolution, resolution, image.shape[-1]])


def make_tfds_iterator(data_config, local_batch: int, seed: int, process_index: int = 0,
                       process_count: int = 1, start_step: int = 0
                       ) -> Iterator[Dict[str, np.ndarray]]:
  """Numpy iterator over `make_tfds_dataset`, prefetched `config.data.prefetch` batches ahead."""
  dataset = make_tfds_dataset(data_config, local_batch, seed, process_index, process_count,
                              start_step)
  if data_config.prefetch:
    dataset = dataset.prefetch(data_config.prefetch)
  return iter(dataset.as_numpy_iterator())


def make_tfds_eval_iterator(data_config, batch_size: int, process_index: int = 0,
                            process_count: int = 1) -> Iterator[Dict[str, np.ndarray]]:
  """Every image of the training split once, in order, padded to full batches (see pipeline)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tfds = _tfds()
  info = tfds_info(data_config)
  resolution, channels, c_dim = info.resolution, info.channels, info.c_dim
  num_batches = pipeline.eval_num_batches(info.num_images, batch_size, process_count)
  split = tfds.split_for_jax_process(train_split(data_config.name), process_index=process_index,
                                     process_count=process_count)

  def decode(record):
    image = tf.io.decode_image(record['image'], channels=channels, expand_animations=False)
    label = (tf.one_hot(record['label'], c_dim, dtype=tf.float32) if c_dim
             else tf.zeros([0], tf.float32))
    return {'image': center_crop_resize(image, resolution), 'label': label,
            'valid': tf.constant(True)}

  padding = tf.data.Dataset.from_tensors({
      'image': tf.zeros([resolution, resolution, channels], tf.uint8),
      'label': tf.zeros([c_dim], tf.float32), 'valid': tf.constant(False)}).repeat()
  records = _load(data_config.name, split).map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
  dataset = records.concatenate(padding).take(num_batches * batch_size).batch(batch_size)
  return iter(dataset.prefetch(2).as_numpy_iterator())
