"""Read the reference's network pickles without running any code from them (and without torch).

The reference (`torch_utils/persistence.py`) pickles each network as a call to
`_reconstruct_persistent_obj(meta)`, where `meta` holds the class's module *source code* and the
object's `__dict__` (`_parameters`, `_buffers`, `_modules`, `_init_kwargs`, ...). Plain unpickling
would exec that source. Here a restricted Unpickler resolves only a whitelist of globals: the
persistence hook becomes a `PersistentObject` that keeps `meta` as data, tensors are rebuilt as
numpy arrays straight from the bytes of torch's legacy storage format, and anything else (e.g.
`os.system`) is refused with a `pickle.UnpicklingError` before it can run.
"""
from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import io
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

from dgan_jax import errors

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
MAX_TENSOR_ELEMENTS = 2**31   # Far above any network parameter; stops a crafted size from eating RAM.
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
    'float32': np.float32, 'float64': np.float64, 'float16': np.float16, 'int64': np.int64,
    'int32': np.int32, 'int16': np.int16, 'int8': np.int8, 'uint8': np.uint8, 'bool': np.bool_,
}


class BadPickleError(errors.UserError, pickle.UnpicklingError):
  """The file is not a reference network pickle dgan_jax can read safely (message says why)."""


@dataclasses.dataclass
class PersistentObject:
  """A reference network as data: its class name and its pickled `__dict__` (never executed)."""
  class_name: str
  state: dict

  @property
  def init_kwargs(self) -> dict:
    return plain(self.state.get('_init_kwargs', {}))

  def state_dict(self, prefix: str = '') -> 'collections.OrderedDict[str, np.ndarray]':
    """Parameters, persistent buffers and children's entries, in torch's state_dict order."""
    return module_state_dict(self.state, prefix)


def module_state_dict(state: dict, prefix: str = '') -> 'collections.OrderedDict[str, np.ndarray]':
  """The state dict of a pickled module's `__dict__` (a PersistentObject's or a ReferenceModule's):
  parameters, persistent buffers, then its children's entries, in torch's order."""
  out = collections.OrderedDict()
  for name, value in (state.get('_parameters') or {}).items():
    if value is not None:
      out[prefix + name] = value
  skip = set(state.get('_non_persistent_buffers_set') or ())
  for name, value in (state.get('_buffers') or {}).items():
    if value is not None and name not in skip:
      out[prefix + name] = value
  for name, child in (state.get('_modules') or {}).items():
    if isinstance(child, (PersistentObject, ReferenceModule)):
      out.update(module_state_dict(child.state, f'{prefix}{name}.'))
    elif child is not None:
      raise BadPickleError(f'{prefix}{name} is not a reference network module.')
  return out


class ReferenceModule:
  """A plain (non-persistent) torch module of the reference pickled inside a snapshot, as data.

  The reference's training loop pickles its `Diffusion` module with every snapshot; its `aug`
  child is `training.diffusion.Identity` (`--aug no`) or `training.diffaug.DiffAugment`
  (`--aug diff`), pickled by class name. Only the names in REFERENCE_MODULES are accepted; the
  object keeps the pickled `__dict__` (`state`) and runs nothing.
  """
  class_name = ''
  state: dict = {}     # the pickled __dict__ (set by __setstate__; never mutated)

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise pickle.UnpicklingError(f'{self.class_name}: unexpected pickled state {type(state)}.')
    self.state = dict(state)

  def __repr__(self):
    return f'ReferenceModule({self.class_name})'


def _module_placeholder(module: str, name: str):
  return type(name, (ReferenceModule,), {'class_name': f'{module}.{name}',
                                         '__module__': __name__})


# Plain torch modules the reference snapshots contain (see ReferenceModule): Diffusion-StyleGAN2's
# and Diffusion-InsGen's (`training/augment.py`) identity augmentation, DiffAugment, the layers of
# Diffusion-InsGen's contrastive heads (CLHead.mlp / momentum_mlp: Sequential(Linear, ReLU,
# Linear)), and the DistributedDataParallel wrapper its multi-GPU snapshots keep around the heads
# (`DHead`, `GHead`; unwrap_ddp gives the persistent head inside).
DDP = ('torch.nn.parallel.distributed', 'DistributedDataParallel')
REFERENCE_MODULES = {key: _module_placeholder(*key) for key in (
    ('training.diffusion', 'Identity'), ('training.augment', 'Identity'),
    ('training.diffaug', 'DiffAugment'), ('torch.nn.modules.container', 'Sequential'),
    ('torch.nn.modules.linear', 'Linear'), ('torch.nn.modules.activation', 'ReLU'), DDP)}
# Modules whose private records (_BucketCapacityConfig, _JoinConfig, ... by torch version) a pickled
# DistributedDataParallel holds: rebuilt as InertRecords.
_DDP_RECORD_MODULES = ('torch.nn.parallel.distributed', 'torch.distributed.algorithms.join')


class InertRecord:
  """Stand-in for a private torch record inside a pickled DistributedDataParallel (a named tuple
  or dataclass of settings): keeps its arguments and state as data, runs nothing."""

  def __new__(cls, *args, **kwargs):
    obj = super().__new__(cls)
    obj.args, obj.kwargs, obj.state = args, kwargs, None
    return obj

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def __setstate__(self, state):
    self.state = state


def _torch_device(*args):
  """torch.device(...) of a pickled DistributedDataParallel, as its string ('cuda:0')."""
  return ':'.join(str(a) for a in args)


def unwrap_ddp(obj):
  """The module inside a pickled DistributedDataParallel (its `module` child), else `obj`."""
  if isinstance(obj, REFERENCE_MODULES[DDP]):
    inner = (obj.state.get('_modules') or {}).get('module')
    if inner is None:
      raise BadPickleError('A pickled DistributedDataParallel has no `module` inside.')
    return inner
  return obj


def _reconstruct_persistent_obj(meta):
  meta = dict(meta)
  if meta.get('type') != 'class' or not isinstance(meta.get('state'), dict):
    raise BadPickleError(f'Unknown persistent object: type={meta.get("type")!r}.')
  return PersistentObject(class_name=str(meta.get('class_name')), state=dict(meta['state']))


class EasyDict(dict):
  """Stand-in for dnnlib.util.EasyDict (a dict with attribute access)."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError as e:
      raise AttributeError(name) from e


def plain(value):
  """EasyDicts -> dicts, numpy scalars -> Python numbers, recursively (for kwargs)."""
  if isinstance(value, dict):
    return {k: plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(plain(v) for v in value)
  if isinstance(value, np.generic):
    return value.item()
  return value


@dataclasses.dataclass
class _StorageType:
  dtype: Any


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """torch._utils._rebuild_tensor(_v2): a strided view of a storage, copied into a numpy array.

  Offset, sizes and strides are checked against the storage first: a view reaching outside it
  would read foreign memory (a crash, or silently wrong weights).
  """
  del unused  # requires_grad, backward_hooks, metadata
  if not isinstance(storage, np.ndarray) or storage.ndim != 1:
    raise BadPickleError(f'A tensor is built on a {type(storage).__name__}, not a tensor storage.')
  size, stride = _int_tuple(size, 'size'), _int_tuple(stride, 'stride')
  offset = _int_tuple((storage_offset,), 'storage offset')[0]
  if len(size) != len(stride):
    raise BadPickleError(f'A tensor has size {size} but stride {stride} (different lengths).')
  numel = int(np.prod(size, dtype=np.int64)) if size else 1
  if numel > MAX_TENSOR_ELEMENTS:
    raise BadPickleError(f'A tensor of size {size} has {numel} elements, more than a network '
                         'parameter can have; the pickle is damaged or not a network pickle.')
  last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if numel else offset - 1
  if last >= len(storage) or offset > len(storage):
    raise BadPickleError(
        f'A tensor (size {size}, stride {stride}, offset {offset}) reaches element {last} of a '
        f'storage of {len(storage)} elements; the pickle is damaged or was crafted.')
  if not size:
    return storage[offset].copy()
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                         strides=tuple(s * item for s in stride), writeable=False)
  return np.array(view, copy=True)


def _int_tuple(values, what: str) -> tuple:
  """A tuple of non-negative Python ints, or BadPickleError."""
  try:
    out = tuple(values)
  except TypeError:
    out = None
  if out is None or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                            and v >= 0 for v in out):
    raise BadPickleError(f'A tensor has an invalid {what} {values!r} (non-negative integers '
                         'expected).')
  return tuple(int(v) for v in out)


def _rebuild_parameter(data, *unused):
  del unused
  return data


def _reconstructor(cls, base, state):
  """copyreg._reconstructor for the only classes protocol-0/1 pickles may rebuild this way."""
  if isinstance(cls, type) and issubclass(cls, ReferenceModule) and base is object:
    return cls.__new__(cls)
  if cls is not EasyDict or base not in (dict, object):
    raise BadPickleError(f'Refusing to rebuild {cls!r} from {base!r}.')
  return EasyDict(state or {})


class _LegacyStorageUnpickler(pickle.Unpickler):
  """The main record of torch's legacy (non-zip) save format: the storage's persistent id."""

  def find_class(self, module, name):
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    return _find_safe_class(module, name)

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise BadPickleError(f'Unsupported persistent id {pid!r} in a tensor storage.')
    _, storage_type, key, _location, numel, *view = pid
    if not isinstance(storage_type, _StorageType):
      raise BadPickleError(f'Unsupported storage type {storage_type!r}.')
    return ('storage', str(key), storage_type.dtype, int(numel), view[0] if view else None)


def _load_from_bytes(data: bytes) -> np.ndarray:
  """torch.storage._load_from_bytes: parse torch's legacy save of one storage into a 1-D array."""
  f = io.BytesIO(data)
  header = _LegacyStorageUnpickler(f)
  if header.load() != _LEGACY_MAGIC:
    raise BadPickleError('A tensor storage is not in torch\'s legacy save format.')
  header.load()                                   # protocol version
  sys_info = header.load()
  if isinstance(sys_info, dict) and not sys_info.get('little_endian', True):
    raise BadPickleError('Big-endian tensor storages are not supported.')
  record = _LegacyStorageUnpickler(f).load()
  keys = _LegacyStorageUnpickler(f).load()
  if not (isinstance(record, tuple) and record[0] == 'storage'):
    raise BadPickleError('A tensor storage record holds something else than a storage.')
  storages = {}
  for key in keys:
    (numel,) = struct.unpack('<q', f.read(8))
    dtype = np.dtype(record[2]) if str(key) == record[1] else None
    if dtype is None:
      raise BadPickleError('A tensor storage holds more than one storage.')
    raw = f.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
      raise BadPickleError('A tensor storage is truncated.')
    storages[str(key)] = np.frombuffer(raw, dtype=dtype)
  storage = storages[record[1]]
  view = record[4]
  if view is not None:                            # (view key, offset, size) of old pickles
    _, offset, size = view
    offset, size = _int_tuple((offset, size), 'storage view')
    if offset + size > len(storage):
      raise BadPickleError(f'A storage view [{offset}, {offset + size}) lies outside its storage '
                           f'of {len(storage)} elements.')
    storage = storage[offset:offset + size]
  return storage


def _latin1_encode(text, encoding='latin1'):
  """_codecs.encode as protocol-2 pickles use it for bytes objects (str -> latin-1 bytes only)."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
    raise BadPickleError(f'Refusing _codecs.encode with encoding {encoding!r}.')
  return text.encode('latin-1')


def _numpy_frombuffer(buf, dtype, shape, order):
  """numpy's protocol-5 array rebuild (bytes -> array), reimplemented on plain data."""
  return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape, order=order).copy()


def _numpy_global(name):
  try:
    from numpy._core import multiarray  # pylint: disable=import-outside-toplevel
  except ImportError:   # numpy < 2
    from numpy.core import multiarray  # pylint: disable=import-outside-toplevel
  return getattr(multiarray, name)


_SAFE_GLOBALS = {
    ('collections', 'OrderedDict'): lambda: collections.OrderedDict,
    ('builtins', 'set'): lambda: set,
    ('builtins', 'frozenset'): lambda: frozenset,
    ('builtins', 'dict'): lambda: dict,
    ('builtins', 'object'): lambda: object,
    ('copyreg', '_reconstructor'): lambda: _reconstructor,
    ('_codecs', 'encode'): lambda: _latin1_encode,
    ('torch._utils', '_rebuild_tensor'): lambda: _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): lambda: _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): lambda: _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): lambda: _load_from_bytes,
    ('torch_utils.persistence', '_reconstruct_persistent_obj'):
        lambda: _reconstruct_persistent_obj,
    ('dnnlib.util', 'EasyDict'): lambda: EasyDict,
    ('dnnlib', 'EasyDict'): lambda: EasyDict,
    ('numpy', 'ndarray'): lambda: np.ndarray,
    ('numpy', 'dtype'): lambda: np.dtype,
    ('numpy.core.multiarray', '_reconstruct'): lambda: _numpy_global('_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'): lambda: _numpy_global('_reconstruct'),
    ('numpy.core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
    ('numpy.core.numeric', '_frombuffer'): lambda: _numpy_frombuffer,
    ('numpy._core.numeric', '_frombuffer'): lambda: _numpy_frombuffer,
    ('numpy._core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
}


def _find_safe_class(module: str, name: str):
  # Protocol 0-2 pickles name Python 2 modules (__builtin__, copy_reg); map them like pickle does.
  module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
  module = _compat_pickle.IMPORT_MAPPING.get(module, module)
  if (module, name) in REFERENCE_MODULES:
    return REFERENCE_MODULES[(module, name)]
  if module in _DDP_RECORD_MODULES and name.startswith('_') and name.isidentifier():
    return type(name, (InertRecord,), {'__module__': __name__})
  if (module, name) == ('torch', 'device'):
    return _torch_device
  factory = _SAFE_GLOBALS.get((module, name))
  if factory is None:
    raise BadPickleError(
        f'The pickle needs {module}.{name}, which dgan_jax does not load: it reads reference '
        'network pickles as data and never runs code from them. Load the pickle with the '
        'reference code and save its networks\' state dicts, or report the pickle\'s origin.')
  return factory()


class ReferenceUnpickler(pickle.Unpickler):
  """Unpickler that only resolves the whitelisted globals above."""

  def find_class(self, module, name):
    return _find_safe_class(module, name)

  def persistent_load(self, pid):
    raise BadPickleError(
        'This file uses persistent ids (a torch.save zip archive?); dgan_jax.import_torch reads '
        'network pickles written with pickle.dump (network-snapshot.pkl, stylegan2-ada *.pkl).')


def load(file: BinaryIO | str) -> Any:
  """Unpickles a reference pickle (path or binary file) into dicts, numpy arrays and
  PersistentObjects. A file that is not such a pickle raises BadPickleError (a UserError)."""
  if isinstance(file, (str, bytes)) or hasattr(file, '__fspath__'):
    try:
      f = open(file, 'rb')
    except FileNotFoundError as e:
      raise errors.MissingInputError(f'{file} does not exist; pass the path of a reference '
                                     'network pickle (e.g. network-snapshot-*.pkl).') from e
    with f:
      return _load(f, file)
  return _load(file, getattr(file, 'name', 'the pickle'))


def _load(f: BinaryIO, name) -> Any:
  try:
    return ReferenceUnpickler(f).load()
  except BadPickleError:
    raise
  except EOFError as e:
    raise BadPickleError(f'{name} is empty or cut short ({e or "no data"}); pass a complete '
                         'reference network pickle.') from e
  except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
          struct.error, UnicodeDecodeError, MemoryError, RecursionError) as e:
    raise BadPickleError(f'{name} is not a readable network pickle ({type(e).__name__}: {e}); '
                         'pass a network-snapshot-*.pkl of the reference or a stylegan2-ada '
                         'network pickle.') from e
