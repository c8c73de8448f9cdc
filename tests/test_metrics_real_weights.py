"""Checks against the real weight files, when a user has them (pytest -m slow).

They compare our whole pipeline (TF1 resize, (x - 128) / 128, network) with NVIDIA's TorchScript
models on the same uint8 images. The files cannot be downloaded on CI; put them into
$DGAN_JAX_METRICS_DIR (see docs/metrics.md) to run these.
"""
import numpy as np
import pytest

from dgan_jax.metrics import inception, vgg16, weights as weights_io

pytestmark = pytest.mark.slow


def _file_or_skip(name):
  path = weights_io.weights_dir() / name
  if not path.exists():
    pytest.skip(f'{path} not present')
  return path


def _images():
  return np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)).astype(np.uint8)


def test_inception_matches_nvidia_torchscript():
  torch = pytest.importorskip('torch')
  path = _file_or_skip('inception-2015-12-05.pt')
  ref_net = torch.jit.load(str(path), map_location='cpu').eval()
  x = _images()
  with torch.no_grad():
    ref = ref_net(torch.from_numpy(x.transpose(0, 3, 1, 2)), return_features=True).numpy()
  pool, _ = inception.load(path)(x)
  np.testing.assert_allclose(np.asarray(pool), ref, atol=1e-3)


def test_vgg16_matches_nvidia_torchscript():
  torch = pytest.importorskip('torch')
  path = _file_or_skip('vgg16.pt')
  ref_net = torch.jit.load(str(path), map_location='cpu').eval()
  x = _images()
  with torch.no_grad():
    ref = ref_net(torch.from_numpy(x.transpose(0, 3, 1, 2)), return_features=True).numpy()
  feats, _ = vgg16.load(path)(x)
  np.testing.assert_allclose(np.asarray(feats), ref, atol=1e-3)
