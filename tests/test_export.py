"""Export to the reference's PyTorch format: keys/shapes/dtypes, exact images, kwargs, errors."""
import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dgan_jax import export
from tests import interop_helpers as helpers

try:
  import torch
  from dgan_jax.interop import torch_generator
except ImportError:   # The default test install has no torch: only the torch-free tests run.
  torch = torch_generator = None
needs_torch = pytest.mark.skipif(torch is None,
                                 reason='needs PyTorch: pip install -e ".[torch-test]"')


def compare_images(data, nets, state, c_dim, z_dim, which='G_ema'):
  """TorchGenerator(export) vs dgan_jax for several truncations; returns the max abs error."""
  g = torch_generator.TorchGenerator(**data['G_kwargs'])
  g.load_state_dict(data[which], strict=True)
  g.eval()
  rng = np.random.default_rng(1)
  z = rng.standard_normal((4, z_dim)).astype(np.float32)
  c = np.eye(max(c_dim, 1), dtype=np.float32)[[0, 1, 2, 0]][:, :c_dim] if c_dim else \
      np.zeros((4, 0), np.float32)
  worst = 0.0
  params = 'g_ema_params' if which == 'G_ema' else 'g_params'
  for psi, cutoff in ((1.0, None), (0.7, None), (0.5, 2)):
    expected = helpers.jax_images(nets, state, z, c, psi, cutoff, params)
    got = g(torch.from_numpy(z), torch.from_numpy(c) if c_dim else None, truncation_psi=psi,
            truncation_cutoff=cutoff, noise_mode='const').numpy().transpose(0, 2, 3, 1)
    assert np.abs(expected).max() > 0.05   # a real image, not zeros
    worst = max(worst, float(np.abs(got - expected).max()))
  return worst


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  """An unconditional :smoke run directory and its state (shared by the tests of this file)."""
  workdir = tmp_path_factory.mktemp('smoke') / 'run'
  config = helpers.config_for('smoke')
  nets, state = helpers.make_run(workdir, config)
  return workdir, config, nets, state


@needs_torch
def test_command_line_export_is_exact(smoke_run, tmp_path):
  workdir, config, nets, state = smoke_run
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.export', f'--workdir={workdir}', '--format=torch',
       f'--out={tmp_path / "network.pt"}'],
      capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parents[1],
      check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  data = torch.load(tmp_path / 'network.pt', weights_only=True)
  assert set(data) >= {'G', 'D', 'G_ema', 'G_kwargs', 'D_kwargs', 'training_set_kwargs',
                       'progress'}
  for which in ('G', 'G_ema'):
    assert compare_images(data, nets, state, 0, config.model.G.z_dim, which) < 1e-3
  # The project's torch module has exactly the exported key order (= the reference's rules).
  assert list(torch_generator.TorchGenerator(**data['G_kwargs']).state_dict()) == list(data['G'])
  assert all(v.dtype == torch.float32 for net in ('G', 'D', 'G_ema') for v in data[net].values())
  progress = data['progress']
  assert progress['cur_nimg'].dtype == torch.int64 and int(progress['cur_nimg'][0]) == 7 * 16
  assert int(progress['batch_idx'][0]) == 7
  g = torch_generator.load_exported_generator(tmp_path / 'network.pt')
  assert g(torch.zeros(2, 16)).shape == (2, 3, 32, 32)


@needs_torch
@pytest.mark.parametrize('architecture', ['resnet', 'orig'])
def test_other_synthesis_architectures_export_exactly(tmp_path, architecture):
  config = helpers.config_for('smoke')
  config.model.G.architecture = architecture
  nets, state = helpers.random_state(config, seed=5)
  data = torch.load(export.write(export.bundle(config, state), tmp_path / 'g.pt'),
                    weights_only=True)
  assert compare_images(data, nets, state, 0, config.model.G.z_dim) < 1e-3


@needs_torch
def test_conditional_export_is_exact(tmp_path):
  config = helpers.config_for('smoke', c_dim=3)
  nets, state = helpers.random_state(config)
  data = torch.load(export.write(export.bundle(config, state), tmp_path / 'c.pt'),
                    weights_only=True)
  assert compare_images(data, nets, state, 3, config.model.G.z_dim) < 1e-3
  assert data['D']['mapping.embed.weight'].shape == (16, 3 + 1)   # labels + raw t
  assert data['G_kwargs']['c_dim'] == 3 and data['D_kwargs']['t_dim'] == 1
  assert data['training_set_kwargs']['use_labels']


@needs_torch
def test_cifar_preset_export_matches_reference_list_and_images(tmp_path, reference_shapes):
  config = helpers.config_for(None)
  nets, state = helpers.random_state(config)
  out = export.write(export.bundle(config, state), tmp_path / 'cifar.pt')
  data = torch.load(out, weights_only=True)
  reference = reference_shapes
  for which in ('G', 'D'):
    produced = [(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
                for k, v in data[which].items()]
    assert produced == reference[which]
  assert list(data['G_ema']) == list(data['G'])
  assert data['G_kwargs'] == dict(
      z_dim=512, c_dim=0, w_dim=512, img_resolution=32, img_channels=3,
      mapping_kwargs=dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.995),
      synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4,
                            conv_clamp=256.0, architecture='skip'))
  assert data['D_kwargs']['architecture'] == 'orig'
  assert data['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == 32
  assert compare_images(data, nets, state, 0, 512) < 1e-3


@needs_torch
def test_npz_format_holds_the_same_arrays(smoke_run, tmp_path):
  workdir = smoke_run[0]
  npz = np.load(export.export_run(workdir, tmp_path / 'net.npz', fmt='npz'))
  pt = torch.load(export.export_run(workdir, tmp_path / 'net.pt'), weights_only=True)
  for net in ('G', 'D', 'G_ema'):
    for key, value in pt[net].items():
      np.testing.assert_array_equal(npz[f'{net}/{key}'], value.numpy())


def test_bad_inputs_give_clear_messages(tmp_path, monkeypatch):
  for fmt in ('npz', 'torch') if torch else ('npz',):
    with pytest.raises(FileNotFoundError, match='has no checkpoint'):
      export.export_run(tmp_path / 'empty', tmp_path / f'x.{fmt}', fmt=fmt)
  config = helpers.config_for('smoke')
  config.model.D.t_embedding = 'sinusoidal'
  _, state = helpers.random_state(config)
  with pytest.raises(ValueError, match="t_embedding='raw'.*--with_d=false"):
    export.bundle(config, state)
  assert 'D' not in export.bundle(config, state, with_d=False)
  with pytest.raises(ValueError, match='--format'):
    export.write({}, tmp_path / 'x', fmt='onnx')
  monkeypatch.setitem(sys.modules, 'torch', None)      # as if torch were not installed
  with pytest.raises(ImportError, match=r"pip install 'dgan_jax\[torch\]'"):
    export.export_run(tmp_path / 'empty', tmp_path / 'x.pt')
  monkeypatch.delitem(sys.modules, 'dgan_jax.interop.torch_generator', raising=False)
  with pytest.raises(ImportError, match=r"torch_generator needs PyTorch.*dgan_jax\[torch\]"):
    importlib.import_module('dgan_jax.interop.torch_generator')
