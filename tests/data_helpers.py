"""Builders of small stylegan2-ada datasets (folders and zips of images) for the data tests."""
import io
import json
import os
import zipfile

import numpy as np
import PIL.Image

from configs.base import get_base_config


def random_images(count, size=8, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8)


def encode(image, fmt='png'):
  buffer = io.BytesIO()
  pil = PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
  pil.save(buffer, format=fmt)
  return buffer.getvalue()


def image_name(idx, ext='png'):
  return f'{idx // 1000:05d}/img{idx:08d}.{ext}'


def write_dataset(path, images, labels=None, fmt='png', extra_files=None):
  """Writes images (and labels) in the stylegan2-ada layout; a folder, or a zip if path ends .zip.

  `labels`: None (no dataset.json), 'null' ({"labels": null}), or a list (one per image).
  `extra_files`: {name: bytes} written as-is (to plant bad files).
  """
  ext = 'jpg' if fmt == 'jpeg' else fmt
  files = {image_name(i, ext): encode(img, fmt) for i, img in enumerate(images)}
  if labels is not None:
    value = None if labels == 'null' else [[image_name(i, ext), lab] for i, lab in enumerate(labels)]
    files['dataset.json'] = json.dumps({'labels': value}).encode()
  files.update(extra_files or {})
  path = str(path)
  if path.endswith('.zip'):
    with zipfile.ZipFile(path, 'w') as z:
      for name, data in files.items():
        z.writestr(name, data)
  else:
    for name, data in files.items():
      full = os.path.join(path, name)
      os.makedirs(os.path.dirname(full), exist_ok=True)
      with open(full, 'wb') as f:
        f.write(data)
  return path


def data_config(path, **overrides):
  """config.data of the base config pointed at `path`, with small-test defaults."""
  config = get_base_config().data
  config.path = str(path)
  config.resolution = 8
  config.shuffle_buffer = 16
  for key, value in overrides.items():
    setattr(config, key, value)
  return config
