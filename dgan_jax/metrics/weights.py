"""Weight files for the metric networks: where they live, reading PyTorch files, the .npz cache.

PyTorch is needed only to read a `.pth` state dict or a TorchScript `.pt` once; the converted
variables are written to a `.npz` beside the source (or into the cache directory) and later runs
load that without torch.
"""
import os
import pathlib
import zipfile
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from dgan_jax import errors

ENV_DIR = 'DGAN_JAX_METRICS_DIR'


def weights_dir() -> pathlib.Path:
  """Directory searched for metric weights: $DGAN_JAX_METRICS_DIR, else ~/.cache/dgan_jax/metrics."""
  return pathlib.Path(os.environ.get(ENV_DIR, pathlib.Path.home() / '.cache' / 'dgan_jax' / 'metrics'))


def missing_weights_error(what: str, names: Iterable[str], urls: Iterable[str],
                          doc: str = 'docs/metrics.md') -> FileNotFoundError:
  """A FileNotFoundError that names the files we look for, where to put them and where to get them."""
  names = list(names)
  return errors.MissingInputError(
      f'{what} weights not found. Put one of {names} into {weights_dir()} (or set ${ENV_DIR}, or '
      f'pass the file path explicitly). Download: ' + ' or '.join(urls) +
      '. Converting a .pth/.pt needs torch once (pip install "dgan_jax[torch]"); the converted '
      f'.npz beside it loads without torch. See {doc}.')


def find_weights(path: str | os.PathLike | None, names: Iterable[str], what: str,
                 urls: Iterable[str], doc: str = 'docs/metrics.md') -> pathlib.Path:
  """`path` if given and present; else the first of `names` found in `weights_dir()`."""
  names = list(names)
  if path is not None:
    path = pathlib.Path(path).expanduser()
    if not path.exists():
      raise errors.MissingInputError(f'{what} weights file {path} does not exist. '
                                      + str(missing_weights_error(what, names, urls, doc)))
    return path
  for name in names:
    candidate = weights_dir() / name
    if candidate.exists():
      return candidate
  raise missing_weights_error(what, names, urls, doc)


def flatten_tree(tree: Mapping[str, Any], prefix: str = '', as_numpy: bool = True) -> dict[str, Any]:
  """Nested dicts -> {'a/b/c': leaf} (leaves as numpy arrays unless `as_numpy=False`)."""
  flat = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping):
      flat.update(flatten_tree(value, name + '/', as_numpy))
    else:
      flat[name] = np.asarray(value) if as_numpy else value
  return flat


def unflatten_tree(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """{'a/b/c': array} -> nested dicts."""
  tree: dict[str, Any] = {}
  for name, value in flat.items():
    node = tree
    *parents, leaf = name.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def save_npz(path: str | os.PathLike, variables: Mapping[str, Any]) -> pathlib.Path:
  """Writes a variables tree as a flat .npz, atomically (a crash never leaves a half file)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'wb') as f:
    np.savez(f, **flatten_tree(variables))
  os.replace(tmp, path)
  return path


def load_npz(path: str | os.PathLike) -> dict[str, Any]:
  with np.load(path) as data:
    return unflatten_tree({k: data[k] for k in data.files})


def load_converted(path: str | os.PathLike, convert: Callable[[pathlib.Path], Mapping[str, Any]],
                   template: Mapping[str, Any]) -> dict[str, Any]:
  """Variables from a `.npz` as is, or from a torch file through `convert`, cached once.

  The conversion is written to `<file>.npz` beside the torch file (or into `weights_dir()` when
  that folder is read-only) and reused while it is newer than the source. The result is checked
  against `template` (a tree of shapes).
  """
  path = pathlib.Path(path)
  if path.suffix == '.npz':
    variables = load_npz(path)
    check_against_template(variables, template, str(path))
    return variables
  cached = path.with_name(path.name + '.npz')
  fallback = weights_dir() / cached.name
  for candidate in (cached, fallback):
    if candidate.exists() and candidate.stat().st_mtime >= path.stat().st_mtime:
      variables = load_npz(candidate)
      check_against_template(variables, template, str(candidate))
      return variables
  variables = dict(convert(path))
  try:
    save_npz(cached, variables)
  except OSError:
    save_npz(fallback, variables)
  return variables


def is_torchscript(path: str | os.PathLike) -> bool:
  """TorchScript archives are zips holding a `constants.pkl` and a `code/` folder."""
  try:
    with zipfile.ZipFile(path) as z:
      return any(n.endswith('constants.pkl') or '/code/' in n for n in z.namelist())
  except zipfile.BadZipFile:
    return False


def read_torch_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict (.pth) or the parameters/buffers of a TorchScript module (.pt).

  Imports torch lazily: only this conversion step needs it.
  """
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f'Reading {path} needs PyTorch once to convert it (pip install '
                      f'"dgan_jax[torch]"); afterwards the converted .npz loads without it.') from e
  if is_torchscript(path):
    state = torch.jit.load(str(path), map_location='cpu').state_dict()
  else:
    state = torch.load(str(path), map_location='cpu', weights_only=True)
    if isinstance(state, Mapping) and 'state_dict' in state:
      state = state['state_dict']
  if not isinstance(state, Mapping):
    raise errors.UserError(f'{path} holds a {type(state).__name__}, expected a state dict of tensors.')
  return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, 'detach')}


def check_against_template(variables: Mapping[str, Any], template: Mapping[str, Any],
                           source: str) -> None:
  """Raises if `variables` lacks a leaf of `template`, has an extra one, or a shape differs."""
  got, want = flatten_tree(variables), {
      k: v.shape for k, v in flatten_tree(template, as_numpy=False).items()}
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  bad = sorted(f'{k}: {got[k].shape} != {want[k]}' for k in set(got) & set(want)
               if tuple(got[k].shape) != tuple(want[k]))
  if missing or extra or bad:
    raise errors.UserError(f'{source} does not match the network: missing {missing[:8]}'
                     f'{" ..." if len(missing) > 8 else ""}, unexpected {extra[:8]}, '
                     f'shape mismatches {bad[:8]}.')
