"""Tests of the stylegan2-ada dataset reader, the step schedule and the training iterator."""
import json
import os
import zipfile

import numpy as np
import pytest

from data_helpers import data_config, encode, image_name, random_images, write_dataset
from dgan_jax.data import pipeline
from dgan_jax.data import schedule
from dgan_jax.data.image_folder import DatasetError, ImageFolder


def take(iterator, count):
  batches = [next(iterator) for _ in range(count)]
  if hasattr(iterator, 'close'):
    iterator.close()
  return batches


# ImageFolder ---------------------------------------------------------------------------------

@pytest.mark.parametrize('container', ['folder', 'zip'])
def test_reads_images_sorted_with_one_hot_labels(tmp_path, container):
  images = random_images(12)
  labels = [int(i % 4) for i in range(12)]
  path = write_dataset(tmp_path / ('d.zip' if container == 'zip' else 'd'), images, labels)
  folder = ImageFolder(path, resolution=8, use_labels=True)
  assert (folder.num_images, folder.resolution, folder.channels, folder.c_dim) == (12, 8, 3, 4)
  assert folder.names == [image_name(i) for i in range(12)]
  np.testing.assert_array_equal(folder.load_all(), images)
  np.testing.assert_array_equal(folder.labels, np.eye(4, dtype=np.float32)[labels])
  assert folder.labels.dtype == np.float32


def test_lexicographic_order_and_non_images_ignored(tmp_path):
  images = random_images(3)
  root = tmp_path / 'd'
  for name, img in zip(['b.png', 'a/z.png', 'c.jpeg'], images):
    write_dataset(root, [], extra_files={name: encode(img, 'jpeg' if name.endswith('jpeg') else 'png')})
  write_dataset(root, [], extra_files={'notes.txt': b'hello'})
  folder = ImageFolder(root)
  assert folder.names == ['a/z.png', 'b.png', 'c.jpeg']
  np.testing.assert_array_equal(folder.image(0), images[1])


def test_grayscale_gives_one_channel(tmp_path):
  images = random_images(4, channels=1)
  folder = ImageFolder(write_dataset(tmp_path / 'g.zip', images))
  assert folder.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(folder.load_all(), images)


def test_float_labels_are_used_as_is(tmp_path):
  labels = [[0.5, -1.0, 2.0], [1.0, 0.0, 0.25]]
  folder = ImageFolder(write_dataset(tmp_path / 'f.zip', random_images(2), labels), use_labels=True)
  np.testing.assert_allclose(folder.labels, labels)


def test_labels_ignored_without_use_labels_and_null_labels(tmp_path):
  path = write_dataset(tmp_path / 'l.zip', random_images(3), [0, 1, 2])
  assert ImageFolder(path).c_dim == 0
  null = write_dataset(tmp_path / 'n.zip', random_images(3), 'null')
  assert ImageFolder(null).labels.shape == (3, 0)


def test_max_images_is_the_reference_seeded_subset(tmp_path):
  images = random_images(20)
  path = write_dataset(tmp_path / 'm.zip', images, list(range(20)))
  folder = ImageFolder(path, use_labels=True, max_images=5, seed=3)
  order = np.arange(20)
  np.random.RandomState(3).shuffle(order)
  expected = np.sort(order[:5])
  np.testing.assert_array_equal(folder.raw_indices, expected)
  np.testing.assert_array_equal(folder.load_all(), images[expected])
  assert folder.c_dim == 20  # One-hot size comes from all labels, as in the reference.
  np.testing.assert_array_equal(folder.labels.argmax(1), expected)
  assert not np.array_equal(ImageFolder(path, max_images=5, seed=4).raw_indices, expected)


# ImageFolder errors --------------------------------------------------------------------------

def test_missing_path(tmp_path):
  with pytest.raises(DatasetError, match='does not exist'):
    ImageFolder(tmp_path / 'nope.zip')


def test_not_a_folder_or_zip(tmp_path):
  (tmp_path / 'x.tar').write_bytes(b'abc')
  with pytest.raises(DatasetError, match='neither a directory nor a .zip'):
    ImageFolder(tmp_path / 'x.tar')


def test_corrupt_zip(tmp_path):
  (tmp_path / 'bad.zip').write_bytes(b'not a zip at all')
  with pytest.raises(DatasetError, match='bad.zip: not a readable zip'):
    ImageFolder(tmp_path / 'bad.zip')


def test_no_images(tmp_path):
  write_dataset(tmp_path / 'e', [], extra_files={'readme.txt': b'x'})
  with pytest.raises(DatasetError, match='no image files'):
    ImageFolder(tmp_path / 'e')


def test_corrupt_first_image_named_at_open(tmp_path):
  path = write_dataset(tmp_path / 'c.zip', [], extra_files={'a.png': b'\x89PNG garbage'})
  with pytest.raises(DatasetError, match=r'c.zip:a.png: cannot read or decode'):
    ImageFolder(path)


def test_truncated_image_named_when_met(tmp_path):
  good = encode(random_images(1)[0])
  path = write_dataset(tmp_path / 't', [], extra_files={'a.png': good, 'b.png': good[:40]})
  folder = ImageFolder(path)
  with pytest.raises(DatasetError, match=r'b.png: cannot read or decode'):
    folder.load_all()


def test_mixed_resolutions_named(tmp_path):
  path = write_dataset(tmp_path / 'r.zip', [], extra_files={
      'a.png': encode(random_images(1, 8)[0]), 'b.png': encode(random_images(1, 16)[0])})
  folder = ImageFolder(path)
  with pytest.raises(DatasetError, match=r'r.zip:b.png: image shape \(16, 16, 3\) differs'):
    folder.image(1)


def test_non_square(tmp_path):
  img = np.zeros((8, 16, 3), np.uint8)
  path = write_dataset(tmp_path / 's.zip', [], extra_files={'a.png': encode(img)})
  with pytest.raises(DatasetError, match='16x8; images must be square'):
    ImageFolder(path)


def test_non_power_of_two(tmp_path):
  path = write_dataset(tmp_path / 'p.zip', random_images(2, size=12))
  with pytest.raises(DatasetError, match='12 is not a power of two'):
    ImageFolder(path)


def test_resolution_mismatch_with_config(tmp_path):
  path = write_dataset(tmp_path / 'p.zip', random_images(2, size=8))
  with pytest.raises(DatasetError, match='data.resolution=8'):
    ImageFolder(path, resolution=16)


def test_rgba_rejected_with_hint(tmp_path):
  rgba = np.zeros((8, 8, 4), np.uint8)
  path = write_dataset(tmp_path / 'a.zip', [], extra_files={'a.png': encode(rgba)})
  with pytest.raises(DatasetError, match="mode 'RGBA'.*dataset_tool"):
    ImageFolder(path)


def test_labels_missing_for_an_image(tmp_path):
  labels = json.dumps({'labels': [[image_name(0), 1]]}).encode()
  path = write_dataset(tmp_path / 'l.zip', random_images(2), extra_files={'dataset.json': labels})
  with pytest.raises(DatasetError, match=r"no label for 1 of 2 images, e.g. '00000/img00000001.png'"):
    ImageFolder(path, use_labels=True)


def test_use_labels_without_labels(tmp_path):
  path = write_dataset(tmp_path / 'l.zip', random_images(2))
  with pytest.raises(DatasetError, match='use_labels=True but dataset.json is missing'):
    ImageFolder(path, use_labels=True)


@pytest.mark.parametrize('labels, message', [
    ([-1, 0], 'negative class label'),
    ([[0.0, 1.0], [1.0]], 'inconsistent shapes|ints .class ids. or equal-length'),
    (['cat', 'dog'], 'must be ints'),
])
def test_bad_label_values(tmp_path, labels, message):
  path = write_dataset(tmp_path / 'l.zip', random_images(2), labels)
  with pytest.raises(DatasetError, match=message):
    ImageFolder(path, use_labels=True)


def test_unparsable_labels_file(tmp_path):
  path = write_dataset(tmp_path / 'l.zip', random_images(2), extra_files={'dataset.json': b'{oops'})
  with pytest.raises(DatasetError, match='dataset.json: cannot parse'):
    ImageFolder(path, use_labels=True)


# StepSchedule --------------------------------------------------------------------------------

@pytest.mark.parametrize('xflip', [False, True])
def test_schedule_epoch_visits_every_item_once(xflip):
  num_images, batch = 10, 4
  sched = schedule.StepSchedule(num_images, batch, seed=1, xflip=xflip)
  epoch_size = num_images * (2 if xflip else 1)
  steps = [sched(s) for s in range(epoch_size)]  # epoch_size batches = `batch` epochs.
  indices = np.concatenate([i for i, _ in steps])
  flips = np.concatenate([f for _, f in steps])
  for epoch in range(batch):
    part = slice(epoch * epoch_size, (epoch + 1) * epoch_size)
    items = indices[part] + num_images * flips[part]
    np.testing.assert_array_equal(np.sort(items), np.arange(epoch_size))
  assert not np.array_equal(indices[:epoch_size], indices[epoch_size:2 * epoch_size])


def test_schedule_hosts_split_the_global_batch():
  single = schedule.StepSchedule(7, 8, seed=5, xflip=True)
  hosts = [schedule.StepSchedule(7, 8, seed=5, xflip=True, process_index=p, process_count=4)
           for p in range(4)]
  for step in [0, 1, 6, 100]:
    parts = [host(step) for host in hosts]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in parts]), single(step)[0])
    np.testing.assert_array_equal(np.concatenate([f for _, f in parts]), single(step)[1])


def test_schedule_rejects_bad_batch():
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    schedule.StepSchedule(10, 8, 0, xflip=False, process_count=3)


# make_train_iterator (stylegan2-ada source) ----------------------------------------------------

@pytest.fixture
def labelled_zip(tmp_path):
  images = random_images(24, seed=7)
  labels = [i % 3 for i in range(24)]
  return write_dataset(tmp_path / 'train.zip', images, labels), images, labels


def test_iterator_yields_flipped_or_plain_dataset_images(labelled_zip):
  path, images, labels = labelled_zip
  config = data_config(path, use_labels=True, xflip=True)
  batches = take(pipeline.make_train_iterator(config, 8, seed=0), 12)
  flipped_any = False
  for batch in batches:
    assert batch['image'].shape == (8, 8, 8, 3) and batch['image'].dtype == np.uint8
    assert batch['label'].shape == (8, 3) and batch['label'].dtype == np.float32
    for img, lab in zip(batch['image'], batch['label']):
      plain = np.flatnonzero((images == img).all(axis=(1, 2, 3)))
      mirrored = np.flatnonzero((images[:, :, ::-1] == img).all(axis=(1, 2, 3)))
      assert len(plain) + len(mirrored) >= 1
      flipped_any |= len(plain) == 0
      index = plain[0] if len(plain) else mirrored[0]
      assert lab.argmax() == labels[index] and lab.sum() == 1
  assert flipped_any


def test_iterator_without_xflip_never_flips_and_label_dim_zero(labelled_zip):
  path, images, _ = labelled_zip
  batches = take(pipeline.make_train_iterator(data_config(path, xflip=False), 6, seed=0), 8)
  seen = np.concatenate([b['image'] for b in batches])
  assert batches[0]['label'].shape == (6, 0)
  # 48 samples = 2 epochs of 24: each image exactly twice, never mirrored.
  keys = sorted(img.tobytes() for img in seen)
  assert keys == sorted(img.tobytes() for img in images for _ in range(2))


def test_iterator_is_deterministic_and_seeded(labelled_zip):
  config = data_config(labelled_zip[0])
  a = take(pipeline.make_train_iterator(config, 8, seed=1), 5)
  b = take(pipeline.make_train_iterator(config, 8, seed=1), 5)
  c = take(pipeline.make_train_iterator(config, 8, seed=2), 5)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
  assert not all(np.array_equal(x['image'], z['image']) for x, z in zip(a, c))


def test_resume_at_step_k_continues_the_uninterrupted_stream(labelled_zip):
  config = data_config(labelled_zip[0], use_labels=True)
  full = take(pipeline.make_train_iterator(config, 10, seed=3), 12)  # Crosses several epochs.
  resumed = take(pipeline.make_train_iterator(config, 10, seed=3, start_step=7), 5)
  for x, y in zip(full[7:], resumed):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])


def test_hosts_read_disjoint_slices_of_the_global_batch(labelled_zip):
  config = data_config(labelled_zip[0], use_labels=True)
  single = take(pipeline.make_train_iterator(config, 8, seed=0), 3)
  hosts = [take(pipeline.make_train_iterator(config, 8, seed=0, process_index=p, process_count=2), 3)
           for p in range(2)]
  for step in range(3):
    assert hosts[0][step]['image'].shape == (4, 8, 8, 3)
    for key in ('image', 'label'):
      np.testing.assert_array_equal(
          np.concatenate([hosts[0][step][key], hosts[1][step][key]]), single[step][key])


def test_streaming_decode_matches_in_memory(labelled_zip, monkeypatch):
  config = data_config(labelled_zip[0], use_labels=True)
  in_memory = take(pipeline.make_train_iterator(config, 8, seed=0), 4)
  monkeypatch.setattr(pipeline, 'IN_MEMORY_LIMIT_BYTES', 0)
  iterator = pipeline.make_train_iterator(config, 8, seed=0)
  assert iterator.pixels is None
  for x, y in zip(in_memory, take(iterator, 4)):
    np.testing.assert_array_equal(x['image'], y['image'])


def test_streaming_reports_corrupt_file(tmp_path, monkeypatch):
  good = [encode(img) for img in random_images(3)]
  path = write_dataset(tmp_path / 'c.zip', [], extra_files={
      'a.png': good[0], 'b.png': good[1], 'c.png': good[2][:30]})
  monkeypatch.setattr(pipeline, 'IN_MEMORY_LIMIT_BYTES', 0)
  iterator = pipeline.make_train_iterator(data_config(path), 3, seed=0)
  batch = next(iterator)   # Streamed: skipped and reported (issue 14.11), not a crash on every restart.
  assert batch['image'].shape[0] == 3
  assert list(iterator.skipped) == ['c.png'] and 'c.zip:c.png' in iterator.skipped['c.png']
  iterator.close()


def test_max_images_subset_uses_the_seed(labelled_zip):
  path, images, _ = labelled_zip
  config = data_config(path, max_images=5, xflip=False)
  batches = take(pipeline.make_train_iterator(config, 5, seed=4), 2)
  order = np.arange(24)
  np.random.RandomState(4).shuffle(order)
  expected = sorted(images[i].tobytes() for i in order[:5])
  for batch in batches:
    assert sorted(img.tobytes() for img in batch['image']) == expected
  assert pipeline.dataset_info(config).num_images == 5


def test_dataset_info(labelled_zip):
  info = pipeline.dataset_info(data_config(labelled_zip[0], use_labels=True))
  assert info == pipeline.DatasetInfo(resolution=8, channels=3, c_dim=3, num_images=24)


@pytest.mark.parametrize('overrides, message', [
    (dict(source='toy25'), 'not an image dataset source'),
    (dict(path=''), 'needs --config.data.path'),
    (dict(source='tfds', name=''), 'needs --config.data.name'),
    (dict(max_images=-1), 'must be >= 0'),
    (dict(channels=1), 'set --config.data.channels=3'),
])
def test_bad_config_is_named(labelled_zip, overrides, message):
  config = data_config(labelled_zip[0])
  config.update(overrides)
  with pytest.raises(ValueError, match=message):
    pipeline.dataset_info(config)


def test_bad_batch_or_step(labelled_zip):
  config = data_config(labelled_zip[0])
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    pipeline.make_train_iterator(config, 8, 0, process_index=0, process_count=3)
  with pytest.raises(ValueError, match='start_step'):
    pipeline.make_train_iterator(config, 8, 0, start_step=-1)


# The shared CIFAR-10 zip -----------------------------------------------------------------------

def test_cifar10_zip_info_and_labels(cifar10_zip):
  config = data_config(cifar10_zip, resolution=32, use_labels=True)
  assert pipeline.dataset_info(config) == pipeline.DatasetInfo(32, 3, 10, 50000)
  folder = ImageFolder(cifar10_zip, use_labels=True)
  assert folder.names[0] == '00000/img00000000.jpg' and folder.names[-1] == '00049/img00049999.jpg'
  with zipfile.ZipFile(cifar10_zip) as z:
    expected = json.loads(z.read('dataset.json'))['labels']
  np.testing.assert_array_equal(folder.labels.argmax(1), [lab for _, lab in expected])
  assert folder.labels[:2].argmax(1).tolist() == [6, 9]  # frog, truck: CIFAR-10's first images.
  np.testing.assert_array_equal(np.bincount(folder.labels.argmax(1)), [5000] * 10)


def test_cifar10_zip_subset_batches(cifar10_zip):
  config = data_config(cifar10_zip, resolution=32, use_labels=True, max_images=500)
  batches = take(pipeline.make_train_iterator(config, 64, seed=0), 3)
  assert batches[0]['image'].shape == (64, 32, 32, 3)
  assert batches[0]['label'].shape == (64, 10)
  assert 20 < batches[0]['image'].mean() < 235


def test_cifar10_zip_full_decode(cifar10_zip):
  # Measured 3-9 s on 2 (busy) cores, under the ~20 s bar for the default suite.
  pixels = ImageFolder(cifar10_zip).load_all()
  assert pixels.shape == (50000, 32, 32, 3) and pixels.dtype == np.uint8
  assert 100 < pixels.mean() < 140



# prefetch_to_mesh ------------------------------------------------------------------------------

def test_prefetch_to_mesh_shards_the_batch_over_devices(labelled_zip):
  import jax  # pylint: disable=import-outside-toplevel
  from dgan_jax.data import device  # pylint: disable=import-outside-toplevel
  mesh = jax.make_mesh((8,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  config = data_config(labelled_zip[0])
  host = take(pipeline.make_train_iterator(config, 16, seed=0), 3)
  on_mesh = list(device.prefetch_to_mesh(iter(host), mesh, size=2))
  assert len(on_mesh) == 3
  for x, y in zip(host, on_mesh):
    assert y['image'].shape == (16, 8, 8, 3) and y['label'].shape == (16, 0)
    assert len(y['image'].sharding.device_set) == 8
    assert y['image'].addressable_shards[1].data.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(np.asarray(y['image']), x['image'])
  with pytest.raises(ValueError, match='size must be >= 1'):
    next(device.prefetch_to_mesh(iter(host), mesh, size=0))


def test_mixed_grayscale_and_rgb_named_with_fix(tmp_path):
  path = write_dataset(tmp_path / 'm.zip', [], extra_files={
      'a.png': encode(random_images(1)[0]), 'b.png': encode(random_images(1, channels=1)[0])})
  with pytest.raises(DatasetError, match=r'm.zip:b.png: 1 channel\(s\) but a.png has 3.*--channels=3'):
    ImageFolder(path).load_all()


def test_class_ids_written_as_floats_or_bools(tmp_path):
  floats = ImageFolder(write_dataset(tmp_path / 'f.zip', random_images(2), [2.0, 0.0]), use_labels=True)
  np.testing.assert_array_equal(floats.labels, [[0, 0, 1], [1, 0, 0]])
  bools = ImageFolder(write_dataset(tmp_path / 'b.zip', random_images(2), [True, False]), use_labels=True)
  np.testing.assert_array_equal(bools.labels, [[0, 1], [1, 0]])
  with pytest.raises(DatasetError, match='must be ints'):
    ImageFolder(write_dataset(tmp_path / 'h.zip', random_images(2), [0.5, 1.0]), use_labels=True)


# make_eval_iterator ----------------------------------------------------------------------------

def test_eval_iterator_covers_every_image_once_across_hosts(labelled_zip):
  path, images, labels = labelled_zip
  config = data_config(path, use_labels=True, max_images=5, xflip=True)  # Both are ignored.
  assert pipeline.eval_num_batches(24, 5, 3) == 2
  seen = []
  for host in range(3):
    batches = list(pipeline.make_eval_iterator(config, 5, process_index=host, process_count=3))
    assert len(batches) == 2
    for batch in batches:
      assert batch['image'].shape == (5, 8, 8, 3) and batch['valid'].dtype == bool
      assert (batch['image'][~batch['valid']] == 0).all()
      seen += [(img.tobytes(), int(lab.argmax())) for img, lab in
               zip(batch['image'][batch['valid']], batch['label'][batch['valid']])]
    np.testing.assert_array_equal(batches[0]['image'][0], images[host])  # Host p starts at p.
  assert sorted(seen) == sorted((img.tobytes(), lab) for img, lab in zip(images, labels))


def test_frozen_config_is_accepted(labelled_zip):
  import ml_collections  # pylint: disable=import-outside-toplevel
  frozen = ml_collections.FrozenConfigDict(data_config(labelled_zip[0], max_images=4))
  assert pipeline.dataset_info(frozen).num_images == 4
  assert len(take(pipeline.make_train_iterator(frozen, 4, seed=0), 2)) == 2
  assert len(list(pipeline.make_eval_iterator(frozen, 8))) == 3


def test_home_relative_path(labelled_zip, monkeypatch):
  path = labelled_zip[0]
  monkeypatch.setenv('HOME', os.path.dirname(path))
  assert ImageFolder('~/train.zip').num_images == 24
