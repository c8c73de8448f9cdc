"""FID Inception-v3: parity with pytorch-fid (random weights), the loaders, the TF1 resize."""
import numpy as np
import pytest

import jax
import jax.numpy as jnp

from dgan_jax.metrics import inception
from dgan_jax.metrics import weights as weights_io
from dgan_jax.metrics.inception_net import Classifier, InceptionV3
from dgan_jax.metrics.tf_resize import interpolation_matrix, resize_bilinear_tf1

import metrics_torch_refs as refs


@pytest.fixture(scope='module')
def torch_inception():
  torch = pytest.importorskip('torch')
  net, wrapper = refs.pytorch_fid_inception(seed=0)
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  return torch, net, wrapper, state


def test_matches_pytorch_fid_features_and_logits(torch_inception):
  torch, net, wrapper, state = torch_inception
  x = np.random.RandomState(1).uniform(-1, 1, (2, 3, 299, 299)).astype(np.float32)
  with torch.no_grad():
    ref_pool = wrapper(torch.from_numpy(x))[0][:, :, 0, 0]
    ref_logits = net.fc(ref_pool).numpy()
    ref_pool = ref_pool.numpy()
  variables = inception.variables_from_pytorch_fid(state)
  pool, logits = jax.jit(InceptionV3().apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
  assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
  assert np.abs(ref_pool).max() > 1e-2  # Random weights still give non-trivial features.
  np.testing.assert_allclose(np.asarray(pool), ref_pool, atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-4, rtol=0)
  # Logits without the output bias (the reference's Inception Score input).
  no_bias = Classifier(1008, use_bias=False).apply({'params': variables['params']['fc']}, pool)
  np.testing.assert_allclose(np.asarray(no_bias), ref_logits - state['fc.bias'], atol=1e-4)


def _nvidia_layout(state):
  """The same weights under NVIDIA's TorchScript names (TF graph names, no BN scale)."""
  names = inception.conv_name_map()
  out = {'output.weight': state['fc.weight'], 'output.bias': state['fc.bias']}
  for prefix, tf_prefix in names.items():
    out[f'{tf_prefix}.weight'] = state[f'{prefix}.conv.weight']
    out[f'{tf_prefix}.beta'] = state[f'{prefix}.bn.bias']
    out[f'{tf_prefix}.mean'] = state[f'{prefix}.bn.running_mean']
    out[f'{tf_prefix}.var'] = state[f'{prefix}.bn.running_var']
  return out


def _torchscript_with_params(torch, flat):
  """A scripted module whose state_dict() holds `flat` under nested module names."""
  root = torch.nn.Module()
  for key, value in flat.items():
    *mods, leaf = key.split('.')
    node = root
    for m in mods:
      if not hasattr(node, m):
        node.add_module(m, torch.nn.Module())
      node = getattr(node, m)
    node.register_buffer(leaf, torch.from_numpy(np.ascontiguousarray(value)))
  return torch.jit.script(root)


def test_loaders_give_identical_trees(torch_inception, tmp_path):
  torch, _, _, state = torch_inception
  # pytorch-fid layout .pth with BN scale 1 (the real file's values), so the NVIDIA layout,
  # which has no BN scale, describes the same network.
  state = dict(state)
  for k in state:
    if k.endswith('bn.weight'):
      state[k] = np.ones_like(state[k])
  pth = tmp_path / 'pt_inception-2015-12-05-6726825d.pth'
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, pth)
  pt = tmp_path / 'inception-2015-12-05.pt'
  _torchscript_with_params(torch, _nvidia_layout(state)).save(str(pt))

  from_pth = inception.load_variables(pth)
  from_pt = inception.load_variables(pt)
  flat_pth, flat_pt = weights_io.flatten_tree(from_pth), weights_io.flatten_tree(from_pt)
  assert flat_pth.keys() == flat_pt.keys()
  for k in flat_pth:
    np.testing.assert_array_equal(flat_pth[k], flat_pt[k], err_msg=k)
  # The first load left converted .npz files that load without torch and give the same tree.
  assert (tmp_path / (pth.name + '.npz')).exists() and (tmp_path / (pt.name + '.npz')).exists()
  from_cache = weights_io.flatten_tree(inception.load_variables(tmp_path / (pth.name + '.npz')))
  for k in flat_pth:
    np.testing.assert_array_equal(flat_pth[k], from_cache[k], err_msg=k)


def test_load_runs_uint8_of_any_size(torch_inception, tmp_path, monkeypatch):
  torch, _, _, state = torch_inception
  monkeypatch.setenv(weights_io.ENV_DIR, str(tmp_path))
  weights_io.save_npz(tmp_path / 'inception-2015-12-05.npz', inception.variables_from_pytorch_fid(state))
  fn = inception.load()
  imgs = np.random.RandomState(0).randint(0, 256, (3, 32, 32, 3)).astype(np.uint8)
  pool, logits = fn(imgs)
  assert pool.shape == (3, 2048) and logits.shape == (3, 1008)
  assert np.isfinite(np.asarray(pool)).all() and np.asarray(pool).std() > 0
  # Gray images are repeated to three channels.
  gray = jnp.asarray(imgs[..., :1])
  np.testing.assert_array_equal(np.asarray(inception.preprocess(gray)),
                                np.asarray(inception.preprocess(jnp.repeat(gray, 3, -1))))


def test_missing_weights_error_names_file_and_place(tmp_path, monkeypatch):
  monkeypatch.setenv(weights_io.ENV_DIR, str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError) as e:
    inception.load_variables()
  msg = str(e.value)
  assert 'pt_inception-2015-12-05-6726825d.pth' in msg and str(tmp_path / 'nowhere') in msg
  assert 'https://' in msg


def test_wrong_layout_is_rejected_with_clear_error():
  with pytest.raises(ValueError, match='missing'):
    inception.variables_from_pytorch_fid({'fc.weight': np.zeros((1008, 2048))})


@pytest.mark.parametrize('size', [32, 64])
def test_resize_matches_tf1_legacy_bilinear(size):
  tf = pytest.importorskip('tensorflow')
  x = np.random.RandomState(size).randint(0, 256, (2, size, size, 3)).astype(np.uint8)
  ref = tf.compat.v1.image.resize_bilinear(x, (299, 299), align_corners=False,
                                           half_pixel_centers=False).numpy()
  ours = np.asarray(resize_bilinear_tf1(jnp.asarray(x), (299, 299)))
  np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)
  # And it is not the half-pixel resize of jax.image.resize.
  hp = np.asarray(jax.image.resize(x.astype(np.float32), (2, 299, 299, 3), 'bilinear'))
  assert np.abs(hp - ref).max() > 1.0


def test_interpolation_rows_sum_to_one_and_clamp():
  m = interpolation_matrix(4, 10)
  np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
  assert m[-1, -1] == 1.0 and m[0, 0] == 1.0  # Edge clamp and exact first sample.


def test_preprocess_rejects_float_images():
  with pytest.raises(ValueError, match='uint8'):
    inception.preprocess(jnp.zeros((1, 32, 32, 3), jnp.float32))
