"""Mechanical mapping between dgan_jax variables and the reference PyTorch state dicts.

Rules (both directions, no per-model tables):
* Flax path `a/b/c` <-> torch key `a.b.c`; 'params' and 'buffers' merge into one state dict.
* Fully connected `weight` [in, out] <-> torch [out, in] (transpose).
* Convolution `weight` [kh, kw, in, out] (HWIO) <-> torch [out, in, kh, kw] (OIHW).
* `const` [H, W, C] <-> torch [C, H, W]. Everything else (biases, `noise_strength`,
  `noise_const`, `w_avg`) is copied as is.
* The constant FIR `resample_filter` buffers are not stored in JAX: the export regenerates them
  (outer([1,3,3,1]) / 64) on every module that registers one in the reference (synthesis and D
  blocks except D's epilogue `b4`, and every conv layer: conv0, conv1, conv, fromrgb, skip); the
  import checks and drops them.
* Keys come out in the reference's state-dict order (own parameters, own buffers, children).
"""
import re
from typing import Any, Mapping

import numpy as np

from dgan_jax.models.layers import RESAMPLE_FILTER

BUFFER_NAMES = ('w_avg', 'noise_const')
_PARAM_ORDER = ('const', 'weight', 'noise_strength', 'bias')
_BUFFER_ORDER = ('resample_filter', 'noise_const', 'w_avg')
_CHILD_ORDER = ('embed', 'fc#', 'fromrgb', 'conv0', 'conv1', 'conv', 'torgb', 'skip', 'fc', 'out',
                'affine')
_CONV_LAYERS = ('conv0', 'conv1', 'conv', 'fromrgb', 'skip')


def _to_torch_leaf(name: str, value: np.ndarray) -> np.ndarray:
  if name == 'weight' and value.ndim == 2:
    return value.T
  if name == 'weight' and value.ndim == 4:
    return value.transpose(3, 2, 0, 1)
  if name == 'const':
    return value.transpose(2, 0, 1)
  return value


def _from_torch_leaf(name: str, value: np.ndarray) -> np.ndarray:
  if name == 'weight' and value.ndim == 2:
    return value.T
  if name == 'weight' and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if name == 'const':
    return value.transpose(1, 2, 0)
  return value


def _merge(a: Mapping, b: Mapping) -> dict:
  out = {k: v for k, v in a.items()}
  for k, v in b.items():
    out[k] = _merge(out.get(k, {}), v) if isinstance(v, Mapping) else v
  return out


def _child_rank(path: tuple[str, ...], name: str, which: str):
  block = re.fullmatch(r'b(\d+)', name)
  if block:
    res = int(block.group(1))
    if which == 'D' and not path:  # D: b{res} descending, then mapping, then the b4 epilogue.
      return (0, -res) if res > 4 else (2, 0)
    return (0, res)                # Synthesis blocks ascending.
  if not path:                     # Top level: G has synthesis then mapping.
    return (1, 0) if name == 'mapping' else (0, 0)
  fc = re.fullmatch(r'fc(\d+)', name)
  if fc:
    return (_CHILD_ORDER.index('fc#'), int(fc.group(1)))
  return (_CHILD_ORDER.index(name), 0)


def _has_resample_filter(path: tuple[str, ...], which: str) -> bool:
  name = path[-1] if path else ''
  if re.fullmatch(r'b\d+', name):
    return not (which == 'D' and name == 'b4' and len(path) == 1)
  return name in _CONV_LAYERS


def _walk(tree: Mapping, path: tuple[str, ...], which: str, out: dict) -> None:
  leaves = {k: v for k, v in tree.items() if not isinstance(v, Mapping)}
  children = {k: v for k, v in tree.items() if isinstance(v, Mapping)}
  prefix = '.'.join(path) + '.' if path else ''
  for name in sorted((k for k in leaves if k not in BUFFER_NAMES), key=_PARAM_ORDER.index):
    out[prefix + name] = _to_torch_leaf(name, np.asarray(leaves[name]))
  buffers = {k: np.asarray(v) for k, v in leaves.items() if k in BUFFER_NAMES}
  if _has_resample_filter(path, which):
    buffers['resample_filter'] = RESAMPLE_FILTER.copy()
  for name in sorted(buffers, key=_BUFFER_ORDER.index):
    out[prefix + name] = buffers[name]
  for name in sorted(children, key=lambda k: _child_rank(path, k, which)):
    _walk(children[name], path + (name,), which, out)


def to_torch_state_dict(params: Mapping, buffers: Mapping | None = None,
                        which: str = 'G') -> dict[str, np.ndarray]:
  """dgan_jax variables -> reference state dict {key: float32 numpy array} in reference order.

  Args:
    params: the 'params' collection of a Generator or Discriminator.
    buffers: the 'buffers' collection (G: w_avg, noise_const; D: none).
    which: 'G' or 'D' (decides the block order and the epilogue's missing resample_filter).
  """
  if which not in ('G', 'D'):
    raise ValueError(f"which must be 'G' or 'D', got {which!r}.")
  out: dict[str, np.ndarray] = {}
  _walk(_merge(params, buffers or {}), (), which, out)
  return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def from_torch_state_dict(state_dict: Mapping[str, Any],
                          which: str = 'G') -> tuple[dict, dict]:
  """Reference state dict (numpy or torch tensors) -> (params, buffers) nested dicts.

  `resample_filter` buffers are checked against the [1,3,3,1] filter and dropped.
  """
  if which not in ('G', 'D'):
    raise ValueError(f"which must be 'G' or 'D', got {which!r}.")
  params: dict = {}
  buffers: dict = {}
  for key, value in state_dict.items():
    # Copy: torch's numpy() aliases the live tensor, which training would keep mutating.
    value = np.array(value.detach().cpu().numpy() if hasattr(value, 'detach') else value,
                     dtype=np.float32, copy=True)
    *path, name = key.split('.')
    if name == 'resample_filter':
      if not np.allclose(value, RESAMPLE_FILTER):
        raise ValueError(f'{key}: only the [1,3,3,1] FIR filter is supported.')
      continue
    node = buffers if name in BUFFER_NAMES else params
    for part in path:
      node = node.setdefault(part, {})
    node[name] = _from_torch_leaf(name, value)
  return params, buffers
