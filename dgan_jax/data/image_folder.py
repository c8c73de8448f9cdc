"""Reading a dataset in the stylegan2-ada layout: a folder or zip of images plus `dataset.json`.

Behaves like the reference's `training/dataset.py::ImageFolderDataset`: every file with an image
extension (as PIL knows them), sorted lexicographically; labels from `dataset.json` keyed by the
file name (int labels become one-hot float32 of size max+1, 2-D float arrays are used as-is); a
`max_images` subset chosen with `np.random.RandomState(seed).shuffle` and sorted, as the reference
does. Images are returned HWC uint8 (the reference returns CHW).

Everything cheap is validated when the dataset is opened (path, listing, labels, the first image's
shape); an image that fails to decode or differs in shape raises `DatasetError` naming the file
when it is met.
"""
import concurrent.futures
import io
import json
import os
import threading
import zipfile
from typing import Optional, Sequence

import numpy as np
import PIL.Image

from dgan_jax import errors

LABELS_FILE = 'dataset.json'


class DatasetError(errors.UserError):
  """A dataset that cannot be used as given; the message names the file and the fix."""


def _image_extensions() -> set[str]:
  PIL.Image.init()
  return set(PIL.Image.EXTENSION)


def _ext(name: str) -> str:
  return os.path.splitext(name)[1].lower()


def _is_power_of_two(n: int) -> bool:
  return n > 0 and (n & (n - 1)) == 0


def image_to_array(image: PIL.Image.Image, where: str) -> np.ndarray:
  """Converts a decoded PIL image to HWC uint8 with 1 or 3 channels (L stays L, RGB stays RGB)."""
  if image.mode == 'P':  # Palette PNGs: expand the palette (the reference would return indices).
    image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
  if image.mode not in ('L', 'RGB'):
    raise DatasetError(
        f'{where}: image mode {image.mode!r} is not supported; images must be grayscale (L) or RGB. '
        'Convert the dataset with `python -m dgan_jax.dataset_tool`, which writes L or RGB PNGs.')
  array = np.asarray(image, dtype=np.uint8)
  if array.ndim == 2:
    array = array[:, :, np.newaxis]
  return array


class ImageFolder:
  """Random access to the images and labels of a stylegan2-ada folder or zip.

  Args:
    path: a directory (searched recursively) or a `.zip` file.
    resolution: if given, the images must be `resolution` x `resolution`.
    use_labels: read labels from `dataset.json`; it is an error if there are none.
    max_images: 0 or None = all; else a seeded random subset of that many images.
    seed: the seed of the `max_images` choice (the reference's `random_seed`).
  """

  def __init__(self, path: str, *, resolution: Optional[int] = None, use_labels: bool = False,
               max_images: Optional[int] = 0, seed: int = 0):
    self.path = os.path.expanduser(os.fspath(path))
    self._local = threading.local()  # One open ZipFile per thread: decoding runs in threads.
    if os.path.isdir(self.path):
      self._is_zip = False
      all_names = set()
      for root, _, files in os.walk(self.path):
        for fname in files:
          all_names.add(os.path.relpath(os.path.join(root, fname), self.path).replace('\\', '/'))
    elif os.path.isfile(self.path) and _ext(self.path) == '.zip':
      self._is_zip = True
      try:
        all_names = set(self._zip().namelist())
      except zipfile.BadZipFile as e:
        raise DatasetError(f'{self.path}: not a readable zip file ({e}). Re-create it with '
                           '`python -m dgan_jax.dataset_tool`.') from e
    elif not os.path.exists(self.path):
      raise DatasetError(f'Dataset path {self.path} does not exist. Set --config.data.path to a '
                         'folder or .zip in the stylegan2-ada layout (see docs/data.md).')
    else:
      raise DatasetError(f'Dataset path {self.path} is neither a directory nor a .zip file. Convert '
                         'it with `python -m dgan_jax.dataset_tool --source=... --dest=....zip`.')

    extensions = _image_extensions()
    all_image_names = sorted(n for n in all_names if _ext(n) in extensions)
    if not all_image_names:
      raise DatasetError(f'{self.path}: no image files found (looked for {", ".join(sorted(extensions)[:8])}, ...).')
    self.num_raw_images = len(all_image_names)

    raw_labels = self._read_labels(all_names, all_image_names) if use_labels else None
    if use_labels and raw_labels is None:
      raise DatasetError(
          f'{self.path}: use_labels=True but {LABELS_FILE} is missing or has "labels": null. Add '
          f'labels ({{"labels": [["00000/img00000000.png", 6], ...]}}) or set --config.data.use_labels=False.')

    raw_idx = np.arange(self.num_raw_images, dtype=np.int64)
    if max_images and max_images < self.num_raw_images:
      np.random.RandomState(seed).shuffle(raw_idx)
      raw_idx = np.sort(raw_idx[:max_images])
    self.raw_indices = raw_idx
    self.names = [all_image_names[i] for i in raw_idx]

    if raw_labels is None:
      self.labels = np.zeros([len(self.names), 0], np.float32)
    elif raw_labels.dtype == np.int64:
      one_hot = np.zeros([self.num_raw_images, int(raw_labels.max()) + 1], np.float32)
      one_hot[np.arange(self.num_raw_images), raw_labels] = 1
      self.labels = one_hot[raw_idx]
    else:
      self.labels = raw_labels[raw_idx]

    first = self._decode(self.names[0])
    height, width, channels = first.shape
    if height != width:
      raise DatasetError(f'{self._where(self.names[0])}: image is {width}x{height}; images must be '
                         'square. Use `python -m dgan_jax.dataset_tool --transform=center-crop`.')
    if not _is_power_of_two(width):
      raise DatasetError(f'{self._where(self.names[0])}: resolution {width} is not a power of two. '
                         'Resize with `python -m dgan_jax.dataset_tool --width=N --height=N`.')
    if resolution is not None and resolution != width:
      raise DatasetError(f'{self._where(self.names[0])}: images are {width}x{width} but the config '
                         f'asks for {resolution}x{resolution}. Set --config.data.resolution={width}.')
    self.image_shape = (height, width, channels)

  # Properties ---------------------------------------------------------------------------------

  @property
  def num_images(self) -> int:
    return len(self.names)

  @property
  def resolution(self) -> int:
    return self.image_shape[0]

  @property
  def channels(self) -> int:
    return self.image_shape[2]

  @property
  def c_dim(self) -> int:
    return self.labels.shape[1]

  # Decoding -----------------------------------------------------------------------------------

  def image(self, index: int) -> np.ndarray:
    """The `index`-th image of the (subset) dataset, HWC uint8, checked against the first's shape."""
    name = self.names[index]
    array = self._decode(name)
    if array.shape[:2] == self.image_shape[:2] and array.shape != self.image_shape:
      raise DatasetError(
          f'{self._where(name)}: {array.shape[2]} channel(s) but {self.names[0]} has '
          f'{self.image_shape[2]}. Mixed grayscale and RGB images: convert them with '
          '`python -m dgan_jax.dataset_tool --channels=3` (or 1), which writes one mode for all.')
    if array.shape != self.image_shape:
      raise DatasetError(
          f'{self._where(name)}: image shape {array.shape} differs from the dataset\'s '
          f'{self.image_shape} (from {self.names[0]}). All images must have the same resolution '
          'and channels; convert the dataset with `python -m dgan_jax.dataset_tool`.')
    return array

  def images(self, indices: Sequence[int], pool: Optional[concurrent.futures.Executor] = None
             ) -> np.ndarray:
    """Images at `indices` stacked NHWC; decoded in `pool` if given (PIL releases the GIL)."""
    indices = [int(i) for i in indices]
    out = np.empty((len(indices),) + self.image_shape, np.uint8)
    def fill(slot_and_index):
      slot, index = slot_and_index
      out[slot] = self.image(index)
    if pool is None:
      for item in enumerate(indices):
        fill(item)
    else:
      list(pool.map(fill, enumerate(indices)))
    return out

  def load_all(self, num_threads: int = 0) -> np.ndarray:
    """Decodes the whole (subset) dataset into one uint8 NHWC array (CIFAR-10: ~150 MB, ~3 s)."""
    num_threads = num_threads or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      chunks = np.array_split(np.arange(self.num_images), max(1, self.num_images // 1024))
      parts = list(pool.map(lambda chunk: self.images(chunk), chunks))
    return np.concatenate(parts, axis=0)

  def close(self):
    handle = getattr(self._local, 'zip', None)
    if handle is not None:
      handle.close()
      self._local.zip = None

  # Internals ----------------------------------------------------------------------------------

  def _where(self, name: str) -> str:
    return f'{self.path}:{name}' if self._is_zip else os.path.join(self.path, name)

  def _zip(self) -> zipfile.ZipFile:
    handle = getattr(self._local, 'zip', None)
    if handle is None:
      handle = zipfile.ZipFile(self.path)
      self._local.zip = handle
    return handle

  def _read_bytes(self, name: str) -> bytes:
    if self._is_zip:
      return self._zip().read(name)
    with open(os.path.join(self.path, name), 'rb') as f:
      return f.read()

  def _decode(self, name: str) -> np.ndarray:
    try:
      data = self._read_bytes(name)
      with PIL.Image.open(io.BytesIO(data)) as image:
        image.load()
        return image_to_array(image, self._where(name))
    except DatasetError:
      raise
    except (OSError, ValueError, SyntaxError, zipfile.BadZipFile) as e:
      raise DatasetError(f'{self._where(name)}: cannot read or decode this image ({e}). Remove or '
                         're-encode the file, then try again.') from e

  def _read_labels(self, all_names: set[str], image_names: list[str]) -> Optional[np.ndarray]:
    """Labels in image order: int64 [N] or float32 [N, D]; None when there are none."""
    if LABELS_FILE not in all_names:
      return None
    where = self._where(LABELS_FILE)
    try:
      labels = json.loads(self._read_bytes(LABELS_FILE))['labels']
    except (ValueError, KeyError, TypeError) as e:
      raise DatasetError(f'{where}: cannot parse ({e!r}); expected {{"labels": [[name, label], ...]}} '
                         'or {"labels": null}.') from e
    if labels is None:
      return None
    try:
      by_name = {str(name).replace('\\', '/'): value for name, value in labels}
    except (TypeError, ValueError) as e:
      raise DatasetError(f'{where}: "labels" must be a list of [file name, label] pairs ({e}).') from e
    image_names = [n.replace('\\', '/') for n in image_names]
    missing = [n for n in image_names if n not in by_name]
    if missing:
      raise DatasetError(f'{where}: no label for {len(missing)} of {len(image_names)} images, e.g. '
                         f'{missing[0]!r}. Every image needs a label (or use "labels": null).')
    values = [by_name[n] for n in image_names]
    try:
      array = np.array(values)
    except ValueError as e:
      raise DatasetError(f'{where}: labels have inconsistent shapes ({e}); use one int class or one '
                         'float vector of the same length per image.') from e
    if array.ndim == 1 and array.dtype.kind in 'bf' and np.all(np.mod(array, 1) == 0):
      array = array.astype(np.int64)  # 6.0 or True: class ids written as floats or bools.
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
      if array.min() < 0:
        bad = image_names[int(np.argmin(array))]
        raise DatasetError(f'{where}: negative class label {array.min()} for {bad!r}; class labels '
                           'must be integers >= 0.')
      return array.astype(np.int64)
    if array.ndim == 2 and np.issubdtype(array.dtype, np.number):
      return array.astype(np.float32)
    raise DatasetError(f'{where}: labels must be ints (class ids) or equal-length float vectors; got '
                       f'array of dtype {array.dtype} and shape {array.shape}.')
