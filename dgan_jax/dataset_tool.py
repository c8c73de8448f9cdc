"""Converts images into the stylegan2-ada dataset layout (a folder or an uncompressed zip).

  python -m dgan_jax.dataset_tool --source=~/photos --dest=~/datasets/photos64.zip \\
      --transform=center-crop --width=64 --height=64

Sources: an image folder (recursive, with an optional `dataset.json`), a zip of images, or
`cifar-10-python.tar.gz` (the 5 training batches, with labels). Output, as the reference's
`dataset_tool.py` writes it: uncompressed PNGs `{idx//1000:05d}/img{idx:08d}.png` and a
`dataset.json` of `{"labels": [[name, int], ...]}`, or `{"labels": null}` when any image has no
label. Output images must be square, a power of two, and grayscale or RGB, all of one shape
(`--channels=3` or `=1`, an addition to the reference's options, converts mixed modes).
"""
import argparse
import io
import json
import os
import pickle
import sys
import tarfile
import zipfile
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

import numpy as np
import PIL.Image

from dgan_jax.data.image_folder import DatasetError

RESIZE_FILTERS = {'box': PIL.Image.BOX, 'lanczos': PIL.Image.LANCZOS}
TRANSFORMS = ('center-crop', 'center-crop-wide')


class SourceImage(NamedTuple):
  image: np.ndarray       # HWC uint8 (1 or 3 channels).
  label: Optional[int]    # Class label, or None when the source has none for it.
  where: str              # The source file, for error messages.


def _is_image_name(name: str) -> bool:
  PIL.Image.init()
  return os.path.splitext(name)[1].lower() in PIL.Image.EXTENSION


def _to_array(image: PIL.Image.Image) -> np.ndarray:
  """HWC uint8 with 1 channel (grayscale modes) or 3 (everything else; alpha is dropped)."""
  image = image.convert('L' if image.mode in ('1', 'L', 'LA') else 'RGB')
  array = np.asarray(image, dtype=np.uint8)
  return array[:, :, np.newaxis] if array.ndim == 2 else array


def _decode(data: bytes, where: str) -> np.ndarray:
  try:
    with PIL.Image.open(io.BytesIO(data)) as image:
      return _to_array(image)
  except (OSError, ValueError, SyntaxError) as e:
    raise DatasetError(f'{where}: cannot read or decode this image ({e}). Remove or re-encode it.'
                       ) from e


def _parse_labels(text: bytes, where: str) -> dict:
  try:
    labels = json.loads(text)['labels']
    return {} if labels is None else {str(name).replace('\\', '/'): value for name, value in labels}
  except (ValueError, KeyError, TypeError) as e:
    raise DatasetError(f'{where}: cannot parse labels ({e!r}); expected '
                       '{"labels": [[name, label], ...]} or {"labels": null}.') from e


def open_image_folder(source: str, max_images: Optional[int]) -> Tuple[int, Iterator[SourceImage]]:
  names = sorted(
      os.path.relpath(os.path.join(root, f), source).replace('\\', '/')
      for root, _, files in os.walk(source) for f in files if _is_image_name(f))
  labels = {}
  meta = os.path.join(source, 'dataset.json')
  if os.path.isfile(meta):
    with open(meta, 'rb') as f:
      labels = _parse_labels(f.read(), meta)
  names = names[:max_images] if max_images else names

  def iterate():
    for name in names:
      path = os.path.join(source, name)
      with open(path, 'rb') as f:
        yield SourceImage(_decode(f.read(), path), labels.get(name), path)
  return len(names), iterate()


def open_image_zip(source: str, max_images: Optional[int]) -> Tuple[int, Iterator[SourceImage]]:
  try:
    with zipfile.ZipFile(source) as z:
      all_names = z.namelist()
      labels = _parse_labels(z.read('dataset.json'), f'{source}:dataset.json') if (
          'dataset.json' in all_names) else {}
  except zipfile.BadZipFile as e:
    raise DatasetError(f'{source}: not a readable zip file ({e}).') from e
  names = sorted(n for n in all_names if _is_image_name(n))
  names = names[:max_images] if max_images else names

  def iterate():
    with zipfile.ZipFile(source) as z:
      for name in names:
        where = f'{source}:{name}'
        yield SourceImage(_decode(z.read(name), where), labels.get(name), where)
  return len(names), iterate()


def open_cifar10(source: str, max_images: Optional[int]) -> Tuple[int, Iterator[SourceImage]]:
  """The 5 training batches of `cifar-10-python.tar.gz`, in their order, with labels 0-9."""
  images, labels = [], []
  try:
    with tarfile.open(source, 'r:gz') as tar:
      for batch in range(1, 6):
        with tar.extractfile(f'cifar-10-batches-py/data_batch_{batch}') as f:
          data = pickle.load(f, encoding='latin1')
        images.append(np.asarray(data['data'], np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(data['labels'], np.int64))
  except (OSError, KeyError, tarfile.TarError, pickle.UnpicklingError) as e:
    raise DatasetError(f'{source}: not a readable cifar-10-python.tar.gz ({e!r}).') from e
  images = np.concatenate(images).transpose(0, 2, 3, 1)
  labels = np.concatenate(labels)
  count = min(len(images), max_images) if max_images else len(images)

  def iterate():
    for idx in range(count):
      yield SourceImage(images[idx], int(labels[idx]), f'{source}[{idx}]')
  return count, iterate()


def open_source(source: str, max_images: Optional[int]) -> Tuple[int, Iterator[SourceImage]]:
  """(number of images, iterator) for a folder, a .zip or cifar-10-python.tar.gz."""
  if os.path.isdir(source):
    return open_image_folder(source, max_images)
  if os.path.isfile(source):
    if os.path.basename(source) == 'cifar-10-python.tar.gz':
      return open_cifar10(source, max_images)
    if source.lower().endswith('.zip'):
      return open_image_zip(source, max_images)
    raise DatasetError(f'--source {source}: unknown archive type; use an image folder, a .zip of '
                       'images or cifar-10-python.tar.gz.')
  raise DatasetError(f'--source {source} does not exist.')


def convert_channels(img: np.ndarray, channels: Optional[int]) -> np.ndarray:
  """Grayscale <-> RGB (ITU-R 601-2 luma, as PIL's convert('L')); None keeps the image as is."""
  if channels is None or img.shape[2] == channels:
    return img
  if channels == 3:
    return np.repeat(img, 3, axis=2)
  return _to_array(PIL.Image.fromarray(img).convert('L'))


def make_transform(transform: Optional[str], width: Optional[int], height: Optional[int],
                   resize_filter: str = 'lanczos'
                   ) -> Callable[[np.ndarray], Optional[np.ndarray]]:
  """The reference's scale / center-crop / center-crop-wide; returns None to skip an image."""
  if resize_filter not in RESIZE_FILTERS:
    raise DatasetError(f'--resize-filter={resize_filter!r}: use one of {sorted(RESIZE_FILTERS)}.')
  resample = RESIZE_FILTERS[resize_filter]
  if transform is not None and transform not in TRANSFORMS:
    raise DatasetError(f'--transform={transform!r}: use one of {TRANSFORMS}.')
  if transform is not None and (width is None or height is None):
    raise DatasetError(f'--transform={transform} needs both --width and --height.')

  def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
      return img
    pil = PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
    return _to_array(pil.resize((w, h), resample))

  def scale(img):
    return resize(img, width or img.shape[1], height or img.shape[0])

  def center_crop(img):
    side = min(img.shape[:2])
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return resize(img[top:top + side, left:left + side], width, height)

  def center_crop_wide(img):
    crop_height = int(np.round(width * img.shape[0] / img.shape[1]))
    if img.shape[1] < width or crop_height < height:
      return None  # Too small: skipped, as in the reference.
    top = (img.shape[0] - crop_height) // 2
    img = resize(img[top:top + crop_height], width, height)
    canvas = np.zeros([width, width, img.shape[2]], np.uint8)
    canvas[(width - height) // 2:(width + height) // 2] = img
    return canvas

  return {None: scale, 'center-crop': center_crop, 'center-crop-wide': center_crop_wide}[transform]


class _Destination:
  """Writes files into an uncompressed zip (dest ends in .zip) or an empty/new directory."""

  def __init__(self, dest: str):
    self.zip = None
    self.root = dest
    if dest.lower().endswith('.zip'):
      if os.path.dirname(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
      self.zip = zipfile.ZipFile(dest, 'w', compression=zipfile.ZIP_STORED)
    else:
      if os.path.isdir(dest) and os.listdir(dest):
        raise DatasetError(f'--dest {dest} is a non-empty folder; give an empty or new folder, or '
                           'a .zip path.')
      os.makedirs(dest, exist_ok=True)

  def write(self, name: str, data: bytes):
    if self.zip is not None:
      self.zip.writestr(name, data)
      return
    path = os.path.join(self.root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(data)

  def close(self):
    if self.zip is not None:
      self.zip.close()


def _check_shape(shape: Tuple[int, ...], first: Optional[Tuple[int, ...]], name: str,
                 where: str) -> None:
  height, width, channels = shape
  if first is None:
    if width != height:
      raise DatasetError(f'{where}: {width}x{height} after scale and crop; images must be square. '
                         'Use --transform=center-crop --width=N --height=N.')
    if width & (width - 1):
      raise DatasetError(f'{where}: resolution {width} is not a power of two; use --width and '
                         '--height (e.g. 64, 128, 256).')
    if channels not in (1, 3):
      raise DatasetError(f'{where}: {channels} channels; images must be grayscale or RGB.')
  elif shape[:2] == first[:2] and shape != first:
    raise DatasetError(f'{where} (output {name}): {channels} channel(s) but the first image has '
                       f'{first[2]}; add --channels=3 (or --channels=1) to convert all images.')
  elif shape != first:
    raise DatasetError(f'{where} (output {name}): shape {shape} after scale and crop differs from '
                       f'the first image\'s {first}. All images must share one size; use --width '
                       'and --height (and --transform) to make them equal.')


def convert_dataset(source: str, dest: str, max_images: Optional[int] = None,
                    resize_filter: str = 'lanczos', transform: Optional[str] = None,
                    width: Optional[int] = None, height: Optional[int] = None,
                    channels: Optional[int] = None, log: Callable[[str], None] = lambda message: None) -> int:
  """Converts `source` into the stylegan2-ada layout at `dest`; returns the images written."""
  if not dest:
    raise DatasetError('--dest must not be empty: give an output folder or a .zip path.')
  if channels not in (None, 1, 3):
    raise DatasetError(f'--channels={channels}: use 1 (grayscale) or 3 (RGB).')
  source, dest = os.path.expanduser(source), os.path.expanduser(dest)
  transform_image = make_transform(transform, width, height, resize_filter)
  num_images, images = open_source(source, max_images)
  destination = _Destination(dest)
  first_shape, labels, written = None, [], 0
  try:
    for idx, item in enumerate(images):
      name = f'{idx // 1000:05d}/img{idx:08d}.png'
      img = transform_image(convert_channels(item.image, channels))
      if img is None:
        continue
      _check_shape(img.shape, first_shape, name, item.where)
      first_shape = first_shape or img.shape
      buffer = io.BytesIO()
      PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(
          buffer, format='png', compress_level=0, optimize=False)
      destination.write(name, buffer.getvalue())
      labels.append(None if item.label is None else [name, item.label])
      written += 1
      if written % 1000 == 0:
        log(f'{written}/{num_images} images')
    has_labels = bool(labels) and all(x is not None for x in labels)
    if labels and not has_labels and any(x is not None for x in labels):
      log('some images have no label: writing {"labels": null}')
    destination.write('dataset.json', json.dumps({'labels': labels if has_labels else None}).encode())
  finally:
    destination.close()
  if written == 0:
    raise DatasetError(f'--source {source}: no images were written (no image files found, or all '
                       'were too small for --transform=center-crop-wide).')
  log(f'wrote {written} images to {dest}')
  return written


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m dgan_jax.dataset_tool', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--source', required=True, metavar='PATH',
                      help='image folder, .zip of images, or cifar-10-python.tar.gz')
  parser.add_argument('--dest', required=True, metavar='PATH', help='output folder or .zip')
  parser.add_argument('--max-images', type=int, default=None, help='convert at most this many')
  parser.add_argument('--resize-filter', choices=sorted(RESIZE_FILTERS), default='lanczos')
  parser.add_argument('--transform', choices=TRANSFORMS, default=None)
  parser.add_argument('--width', type=int, default=None, help='output width')
  parser.add_argument('--height', type=int, default=None, help='output height')
  parser.add_argument('--channels', type=int, choices=(1, 3), default=None,
                      help='convert every image to grayscale (1) or RGB (3); default: keep')
  args = parser.parse_args(argv)
  try:
    convert_dataset(args.source, args.dest, args.max_images, args.resize_filter, args.transform,
                    args.width, args.height, args.channels, log=lambda message: print(message, file=sys.stderr))
  except DatasetError as e:
    print(f'Error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
