"""VGG16 (precision/recall features): parity with torchvision's VGG16 and the two loaders."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.metrics import vgg16, weights as weights_io

import metrics_torch_refs as refs


@pytest.fixture(scope='module')
def torch_vgg():
  torch = pytest.importorskip('torch')
  tv = refs.import_torchvision()
  net = tv.models.vgg16(weights=None).eval()
  refs.randomize_(net, seed=3)
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  return torch, net, state


def test_matches_torchvision_vgg16(torch_vgg):
  torch, net, state = torch_vgg
  x = np.random.RandomState(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
  with torch.no_grad():
    t = torch.flatten(net.avgpool(net.features(torch.from_numpy(x))), 1)
    ref_feat = net.classifier[:5](t).numpy()   # fc1, relu, dropout, fc2, relu.
    ref_logits = net(torch.from_numpy(x)).numpy()
  variables = vgg16.variables_from_torchvision(state)
  feat, logits = jax.jit(vgg16.VGG16().apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
  assert (ref_feat > 0).mean() > 0.1  # Non-trivial activations.
  np.testing.assert_allclose(np.asarray(feat), ref_feat, atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-4, rtol=0)


def test_nvidia_and_torchvision_layouts_give_identical_trees(torch_vgg, tmp_path):
  torch, _, state = torch_vgg
  tv_path = tmp_path / 'vgg16-397923af.pth'
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tv_path)
  nv = {f'layers.conv{i + 1}.{leaf}': state[f'features.{j}.{leaf}']
        for i, j in enumerate(vgg16._TV_CONV_INDEX) for leaf in ('weight', 'bias')}
  nv.update({f'layers.fc{i + 1}.{leaf}': state[f'classifier.{j}.{leaf}']
             for i, j in enumerate((0, 3, 6)) for leaf in ('weight', 'bias')})
  nv['lpips0'] = np.ones((1, 64, 1, 1), np.float32)
  a = weights_io.flatten_tree(vgg16.load_variables(tv_path))
  b = weights_io.flatten_tree(vgg16.variables_from_nvidia(nv))
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert (tmp_path / 'vgg16-397923af.pth.npz').exists()


def test_preprocess_resizes_and_normalises():
  x = np.full((1, 32, 32, 3), 255, np.uint8)
  y = np.asarray(vgg16.preprocess(jnp.asarray(x)))
  assert y.shape == (1, 224, 224, 3)
  np.testing.assert_allclose(y[0, 0, 0], (1.0 - np.array(vgg16.IMAGENET_MEAN)) /
                             np.array(vgg16.IMAGENET_STD), rtol=1e-5)


def test_missing_vgg_weights_error(tmp_path, monkeypatch):
  monkeypatch.setenv(weights_io.ENV_DIR, str(tmp_path))
  with pytest.raises(FileNotFoundError, match='vgg16.pt'):
    vgg16.load_variables()
