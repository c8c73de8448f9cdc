"""PyTorch reference models for the metric parity tests (torch, torchvision, pytorch-fid optional).

torchvision's compiled ops do not register against this torch build (`operator torchvision::nms
does not exist` at import). Its pure-Python model definitions do not need them, so
`import_torchvision()` stubs the two modules that register the compiled ops' meta/autograd
kernels before importing it. Only the model definitions are used here.
"""
import sys
import types

import numpy as np
import pytest


def import_torchvision():
  """torchvision with its op registrations skipped (model definitions only); skips if absent."""
  pytest.importorskip('torch')
  if 'torchvision' not in sys.modules:
    for name in ('torchvision._meta_registrations', 'torchvision._autograd_registrations'):
      sys.modules.setdefault(name, types.ModuleType(name))
  return pytest.importorskip('torchvision')


def randomize_(module, seed: int = 0) -> None:
  """Fills every parameter and buffer with random values of a sensible scale (BN vars > 0)."""
  import torch  # pylint: disable=import-outside-toplevel
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
      if not tensor.is_floating_point():
        continue
      if name.endswith('running_var'):
        tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
      elif name.endswith(('running_mean', 'bias')):
        tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
      elif tensor.ndim == 1:  # BN scale
        tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=gen))
      else:
        fan_in = int(np.prod(tensor.shape[1:]))
        tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


def pytorch_fid_inception(seed: int = 0):
  """pytorch-fid's `fid_inception_v3()` network with random weights (no download).

  pytorch-fid builds the network, patches in the FID blocks, then loads the downloaded state dict;
  here the loader is replaced by one that hands back the network's own (randomised) state dict.
  """
  import_torchvision()
  pf = pytest.importorskip('pytorch_fid.inception')
  built = {}
  real_build = pf._inception_v3  # pylint: disable=protected-access

  def build(*args, **kwargs):
    built['net'] = real_build(*args, **kwargs)
    return built['net']

  def fake_download(*args, **kwargs):
    randomize_(built['net'], seed)
    return built['net'].state_dict()

  mp = pytest.MonkeyPatch()
  mp.setattr(pf, '_inception_v3', build)
  mp.setattr(pf, 'load_state_dict_from_url', fake_download)
  try:
    net = pf.fid_inception_v3()
    wrapper_cls = pf.InceptionV3
    mp.setattr(pf, 'fid_inception_v3', lambda: net)
    wrapper = wrapper_cls(output_blocks=[3], resize_input=False, normalize_input=False)
  finally:
    mp.undo()
  return net.eval(), wrapper.eval()
