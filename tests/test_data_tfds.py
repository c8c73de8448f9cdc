"""Tests of the named tfds datasets, with tfds' mock data (no download)."""
import numpy as np
import pytest

from data_helpers import data_config
from dgan_jax.data import pipeline
from dgan_jax.data.image_folder import DatasetError

tfds = pytest.importorskip('tensorflow_datasets')


def tfds_config(name, **overrides):
  config = data_config('', source='tfds', name=name, resolution=32, shuffle_buffer=8)
  config.update(overrides)
  return config


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


@pytest.fixture
def mock20():
  with tfds.testing.mock_data(num_examples=20):
    yield


def test_cifar10_batches_labels_and_info(mock20):
  config = tfds_config('cifar10', use_labels=True)
  assert pipeline.dataset_info(config) == pipeline.DatasetInfo(32, 3, 10, 20)
  batch = next(pipeline.make_train_iterator(config, 8, seed=0))
  assert batch['image'].shape == (8, 32, 32, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].shape == (8, 10) and batch['label'].dtype == np.float32
  np.testing.assert_array_equal(batch['label'].sum(1), np.ones(8))


def test_resume_matches_uninterrupted_stream(mock20):
  config = tfds_config('cifar10', use_labels=True)
  full = take(pipeline.make_train_iterator(config, 6, seed=2), 8)  # 48 samples: 2+ epochs of 20.
  resumed = take(pipeline.make_train_iterator(config, 6, seed=2, start_step=5), 3)
  for x, y in zip(full[5:], resumed):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])
  other_seed = take(pipeline.make_train_iterator(config, 6, seed=3), 2)
  assert not np.array_equal(other_seed[0]['image'], full[0]['image'])


def test_xflip_mirrors_about_half_the_samples(mock20):
  plain = take(pipeline.make_train_iterator(tfds_config('cifar10', xflip=False), 20, seed=0), 4)
  flipped = take(pipeline.make_train_iterator(tfds_config('cifar10', xflip=True), 20, seed=0), 4)
  mirrored = same = 0
  for p, f in zip(plain, flipped):
    for a, b in zip(p['image'], f['image']):
      same += np.array_equal(a, b)
      mirrored += np.array_equal(a[:, ::-1], b) and not np.array_equal(a, b)
  assert same + mirrored == 80
  assert 20 <= mirrored <= 60


@pytest.mark.parametrize('name', ['lsun/church_outdoor', 'celeb_a', 'stl10'])
def test_crop_and_resize_to_resolution(mock20, name):
  config = tfds_config(name, resolution=16)
  assert pipeline.dataset_info(config).resolution == 16
  batch = next(pipeline.make_train_iterator(config, 4, seed=0))
  assert batch['image'].shape == (4, 16, 16, 3) and batch['label'].shape == (4, 0)


def test_unlabelled_datasets_reject_use_labels(mock20):
  for name in ['stl10', 'celeb_a', 'lsun/bedroom']:
    with pytest.raises(DatasetError, match='has no class labels'):
      pipeline.dataset_info(tfds_config(name, use_labels=True))


def test_max_images_takes_the_seeded_subset(mock20):
  config = tfds_config('cifar10', max_images=5, xflip=False)
  assert pipeline.dataset_info(config).num_images == 5
  batches = take(pipeline.make_train_iterator(config, 5, seed=1), 3)
  keys = [sorted(img.tobytes() for img in b['image']) for b in batches]
  assert keys[0] == keys[1] == keys[2] and len(set(keys[0])) == 5


def test_two_hosts_get_local_batches(mock20):
  config = tfds_config('cifar10')
  host0 = next(pipeline.make_train_iterator(config, 8, seed=0, process_index=0, process_count=2))
  assert host0['image'].shape == (4, 32, 32, 3)


def test_unknown_dataset_and_bad_resolution():
  with pytest.raises(DatasetError, match="'no_such_dataset_xyz' not found"):
    pipeline.dataset_info(tfds_config('no_such_dataset_xyz'))
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(DatasetError, match='power of two'):
      pipeline.dataset_info(tfds_config('cifar10', resolution=48))


def test_center_crop_resize_keeps_the_center():
  tf = pipeline.import_tensorflow()
  from dgan_jax.data import tfds_source  # pylint: disable=import-outside-toplevel
  image = np.zeros((12, 20, 3), np.uint8)
  image[:, 4:16] = 200  # The central 12x12 square.
  out = tfds_source.center_crop_resize(tf.constant(image), 4).numpy()
  assert out.shape == (4, 4, 3)
  assert (out == 200).all()
  same = tfds_source.center_crop_resize(tf.constant(image[:, 4:16]), 12).numpy()
  np.testing.assert_array_equal(same, image[:, 4:16])


def test_eval_iterator_reads_every_record_once_padded(mock20):
  config = tfds_config('cifar10', use_labels=True)
  batches = list(pipeline.make_eval_iterator(config, 8))
  assert len(batches) == 3
  valid = np.concatenate([b['valid'] for b in batches])
  assert valid.sum() == 20 and not valid[20:].any()
  images = np.concatenate([b['image'] for b in batches])[:20]
  assert len({img.tobytes() for img in images}) == 20
  assert (batches[-1]['image'][4:] == 0).all()


def test_max_images_subset_is_dealt_out_to_hosts(mock20):
  config = tfds_config('cifar10', max_images=6, xflip=False)
  single = next(pipeline.make_train_iterator(config, 6, seed=1))
  hosts = [next(pipeline.make_train_iterator(config, 6, seed=1, process_index=p, process_count=2))
           for p in range(2)]
  host_keys = [{img.tobytes() for img in h['image']} for h in hosts]
  assert all(len(keys) == 3 for keys in host_keys)  # 3 distinct images per host...
  assert not host_keys[0] & host_keys[1]  # ...disjoint...
  assert host_keys[0] | host_keys[1] == {img.tobytes() for img in single['image']}  # ...the subset.
