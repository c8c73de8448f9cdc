"""Tests of `python -m dgan_jax.dataset_tool`: output layout, transforms, sources and errors."""
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import PIL.Image
import pytest

from data_helpers import encode, image_name, random_images, write_dataset
from dgan_jax import dataset_tool
from dgan_jax.data.image_folder import DatasetError, ImageFolder


def test_folder_to_zip_layout_labels_and_pixels(tmp_path):
  images = random_images(1003, size=4)
  labels = [i % 10 for i in range(1003)]
  source = write_dataset(tmp_path / 'src', images, labels)
  dest = str(tmp_path / 'out' / 'd.zip')
  assert dataset_tool.convert_dataset(source, dest) == 1003
  with zipfile.ZipFile(dest) as z:
    infos = {info.filename: info for info in z.infolist()}
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos.values())
    assert image_name(0) in infos and '00001/img00001002.png' in infos
    meta = json.loads(z.read('dataset.json'))
    png = PIL.Image.open(io.BytesIO(z.read(image_name(5))))
    assert png.format == 'PNG'
  assert meta['labels'][1002] == ['00001/img00001002.png', 2]
  folder = ImageFolder(dest, use_labels=True)
  np.testing.assert_array_equal(folder.load_all(), images)
  np.testing.assert_array_equal(folder.labels.argmax(1), labels)


def test_png_is_uncompressed(tmp_path):
  images = np.zeros((1, 64, 64, 3), np.uint8)  # Compresses to almost nothing if compressed.
  dest = tmp_path / 'out'
  dataset_tool.convert_dataset(write_dataset(tmp_path / 'src', images), str(dest))
  assert os.path.getsize(dest / image_name(0)) > 64 * 64 * 3


def test_zip_to_folder_with_partial_labels_writes_null(tmp_path):
  images = random_images(3, channels=1)
  labels = json.dumps({'labels': [[image_name(0), 1]]}).encode()
  source = write_dataset(tmp_path / 's.zip', images, extra_files={'dataset.json': labels})
  dest = tmp_path / 'out'
  dataset_tool.convert_dataset(source, str(dest), max_images=2)
  assert json.loads((dest / 'dataset.json').read_text()) == {'labels': None}
  folder = ImageFolder(dest)
  assert folder.num_images == 2 and folder.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(folder.load_all(), images[:2])


def test_center_crop_and_resize(tmp_path):
  img = np.zeros((20, 30, 3), np.uint8)
  img[:, 5:25] = 255  # The central 20x20 square is white, the side bands black.
  source = write_dataset(tmp_path / 'src', [], extra_files={'a.png': encode(img)})
  dest = tmp_path / 'out.zip'
  dataset_tool.convert_dataset(source, str(dest), transform='center-crop', width=8, height=8,
                               resize_filter='box')
  out = ImageFolder(dest).load_all()
  assert out.shape == (1, 8, 8, 3) and (out == 255).all()


def test_center_crop_wide_letterboxes(tmp_path):
  img = np.full((30, 40, 3), 255, np.uint8)
  source = write_dataset(tmp_path / 'src', [], extra_files={'a.png': encode(img)})
  dest = tmp_path / 'out.zip'
  dataset_tool.convert_dataset(source, str(dest), transform='center-crop-wide', width=16, height=8)
  out = ImageFolder(dest).load_all()[0]
  assert out.shape == (16, 16, 3)
  assert (out[:4] == 0).all() and (out[12:] == 0).all() and (out[5:11] > 200).all()


def test_scale_with_width_and_height(tmp_path):
  source = write_dataset(tmp_path / 'src', random_images(2, size=16))
  dest = tmp_path / 'out'
  dataset_tool.convert_dataset(source, str(dest), width=4, height=4)
  assert ImageFolder(dest).image_shape == (4, 4, 3)


def test_rgba_is_converted_to_rgb(tmp_path):
  rgba = np.full((8, 8, 4), 100, np.uint8)
  source = write_dataset(tmp_path / 'src', [], extra_files={'a.png': encode(rgba)})
  dataset_tool.convert_dataset(source, str(tmp_path / 'out'))
  assert ImageFolder(tmp_path / 'out').image_shape == (8, 8, 3)


def make_cifar_tarball(path, per_batch=3):
  rng = np.random.default_rng(0)
  batches = {}
  with tarfile.open(path, 'w:gz') as tar:
    for b in range(1, 6):
      data = {'data': rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
              'labels': [int(x) for x in rng.integers(0, 10, per_batch)]}
      batches[b] = data
      payload = pickle.dumps(data)
      info = tarfile.TarInfo(f'cifar-10-batches-py/data_batch_{b}')
      info.size = len(payload)
      tar.addfile(info, io.BytesIO(payload))
  return batches


def test_cifar10_tarball(tmp_path):
  tarball = tmp_path / 'cifar-10-python.tar.gz'
  batches = make_cifar_tarball(tarball)
  dest = tmp_path / 'cifar.zip'
  assert dataset_tool.convert_dataset(str(tarball), str(dest)) == 15
  folder = ImageFolder(dest, use_labels=True)
  expected = np.concatenate([batches[b]['data'] for b in range(1, 6)]).reshape(-1, 3, 32, 32)
  np.testing.assert_array_equal(folder.load_all(), expected.transpose(0, 2, 3, 1))
  labels = sum((batches[b]['labels'] for b in range(1, 6)), [])
  np.testing.assert_array_equal(folder.labels.argmax(1), labels)


# Errors --------------------------------------------------------------------------------------

def test_missing_source(tmp_path):
  with pytest.raises(DatasetError, match='does not exist'):
    dataset_tool.convert_dataset(str(tmp_path / 'nope'), str(tmp_path / 'o.zip'))


def test_non_square_needs_crop(tmp_path):
  source = write_dataset(tmp_path / 's', [], extra_files={'a.png': encode(np.zeros((8, 16, 3), np.uint8))})
  with pytest.raises(DatasetError, match=r'a.png: 16x8 after scale and crop; images must be square'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o.zip'))


def test_non_power_of_two(tmp_path):
  source = write_dataset(tmp_path / 's', random_images(1, size=12))
  with pytest.raises(DatasetError, match='12 is not a power of two'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o.zip'))


def test_mixed_resolutions_name_the_file(tmp_path):
  source = write_dataset(tmp_path / 's', [], extra_files={
      'a.png': encode(random_images(1, 8)[0]), 'b.png': encode(random_images(1, 16)[0])})
  with pytest.raises(DatasetError, match=r'b.png \(output 00000/img00000001.png\): shape'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o.zip'))


def test_corrupt_image_names_the_file(tmp_path):
  source = write_dataset(tmp_path / 's.zip', random_images(1), extra_files={'z.jpg': b'garbage'})
  with pytest.raises(DatasetError, match=r's.zip:z.jpg: cannot read or decode'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o'))


def test_non_empty_dest_folder(tmp_path):
  (tmp_path / 'o').mkdir()
  (tmp_path / 'o' / 'x').write_text('x')
  source = write_dataset(tmp_path / 's', random_images(1))
  with pytest.raises(DatasetError, match='non-empty folder'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o'))


def test_transform_needs_width_and_height(tmp_path):
  with pytest.raises(DatasetError, match='needs both --width and --height'):
    dataset_tool.make_transform('center-crop', 64, None)


def test_unknown_archive(tmp_path):
  (tmp_path / 'x.rar').write_bytes(b'x')
  with pytest.raises(DatasetError, match='unknown archive type'):
    dataset_tool.convert_dataset(str(tmp_path / 'x.rar'), str(tmp_path / 'o'))


def test_main_prints_error_and_returns_1(tmp_path, capsys):
  assert dataset_tool.main(['--source', str(tmp_path / 'nope'), '--dest', str(tmp_path / 'o')]) == 1
  assert 'Error: --source' in capsys.readouterr().err


def test_command_line(tmp_path):
  source = write_dataset(tmp_path / 'src', random_images(3, size=16), [0, 1, 2])
  dest = tmp_path / 'd.zip'
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.dataset_tool', f'--source={source}', f'--dest={dest}',
       '--transform=center-crop', '--width=8', '--height=8', '--resize-filter=box'],
      capture_output=True, text=True, check=False,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0, result.stderr
  folder = ImageFolder(dest, use_labels=True)
  assert folder.image_shape == (8, 8, 3) and folder.c_dim == 3


def mixed_mode_source(tmp_path):
  rgb = random_images(1, channels=3)[0]
  gray = random_images(1, channels=1, seed=1)[0]
  return write_dataset(tmp_path / 'mixed', [], extra_files={'a.png': encode(rgb), 'b.png': encode(gray)}), rgb, gray


def test_mixed_modes_error_suggests_channels(tmp_path):
  source, _, _ = mixed_mode_source(tmp_path)
  with pytest.raises(DatasetError, match=r'b.png .*1 channel\(s\) but the first image has 3; add --channels=3'):
    dataset_tool.convert_dataset(source, str(tmp_path / 'o.zip'))


@pytest.mark.parametrize('channels', [1, 3])
def test_channels_option_converts_every_image(tmp_path, channels):
  source, rgb, gray = mixed_mode_source(tmp_path)
  dest = tmp_path / 'o.zip'
  dataset_tool.main(['--source', source, '--dest', str(dest), '--channels', str(channels)])
  out = ImageFolder(dest).load_all()
  assert out.shape == (2, 8, 8, channels)
  if channels == 3:
    np.testing.assert_array_equal(out[0], rgb)
    np.testing.assert_array_equal(out[1], np.repeat(gray, 3, axis=2))
  else:
    np.testing.assert_array_equal(out[1], gray)
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(out[0, :, :, 0] - luma).max() <= 1
