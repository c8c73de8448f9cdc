"""Shared helpers of the Projected-GAN tests and their fixture scripts (tests/fixtures/make_*.py).

* `import_timm()`: timm with torchvision's op registrations stubbed (they fail on this torch build,
  see metrics_torch_refs.py); skips when torch or timm is missing.
* `seeded_array` / `seeded_state_dict`: deterministic numpy weights keyed by the tensor's name, so a
  fixture script (with torch) and a CI test (without) build the same weights without storing them.
"""
import pathlib
import sys
import zlib
from typing import Iterable, Mapping

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures'


def import_timm():
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
  import metrics_torch_refs  # pylint: disable=import-outside-toplevel
  metrics_torch_refs.import_torchvision()
  return pytest.importorskip('timm')


def seeded_array(name: str, shape: Iterable[int], seed: int = 0) -> np.ndarray:
  """float32 values for the tensor `name`, a function of (name, shape, seed) only.

  Scales follow the tensor's role: running variances in [0.5, 1.5], BatchNorm weights around 1,
  biases / means / noise strengths ~ 0.1 N(0, 1), u/v vectors unit norm, 4-D and 2-D weights
  ~ N(0, 1 / fan_in) (fan_in = all but the first axis of torch's layout).
  """
  shape = tuple(int(s) for s in shape)
  rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
  leaf = name.rsplit('.', 1)[-1]
  if leaf in ('running_var', 'stored_var'):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf in ('weight_u', 'weight_v'):
    v = rng.standard_normal(shape)
    return (v / np.linalg.norm(v)).astype(np.float32)
  if leaf == 'num_batches_tracked':
    return np.zeros(shape, np.float32)
  if len(shape) <= 1 and leaf == 'weight' and not name.endswith('noise.weight'):
    return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
  if len(shape) <= 1:
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)
  fan_in = int(np.prod(shape[1:]))
  return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def seeded_state_dict(shapes: Mapping[str, Iterable[int]], seed: int = 0) -> dict:
  """{key: seeded_array(key, shape, seed)} in the given key order."""
  return {k: seeded_array(k, s, seed) for k, s in shapes.items()}


def torch_state(module) -> dict:
  """A torch module's state dict as float32 numpy arrays (num_batches_tracked included)."""
  return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in module.state_dict().items()}


def load_numpy_state(module, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
  """Copies numpy arrays into a torch module's parameters and buffers by key (dtype kept)."""
  import torch  # pylint: disable=import-outside-toplevel
  own = module.state_dict()
  converted = {k: torch.from_numpy(np.asarray(v)).to(own[k].dtype) for k, v in state.items()}
  missing, unexpected = module.load_state_dict(converted, strict=False)
  if strict and (missing or unexpected):
    raise KeyError(f'missing {missing[:5]}, unexpected {unexpected[:5]}')
