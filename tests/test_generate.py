"""--mode=generate: the reference's seed and PNG rules, grid, interpolation, labels, errors."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dgan_jax import export, generate, run_dir
from tests import interop_helpers as helpers


def test_seed_parsing_and_latent_rule():
  assert generate.parse_seeds('0-3,7, 10-11') == [0, 1, 2, 3, 7, 10, 11]
  for bad in ('5-2', 'a', '1-2-3', ''):
    with pytest.raises(ValueError, match='--seeds'):
      generate.parse_seeds(bad)
  z = generate.seed_latents([85, 265], 512)
  np.testing.assert_array_equal(z[1], np.random.RandomState(265).randn(1, 512)[0].astype(np.float32))
  assert z.dtype == np.float32 and z.shape == (2, 512)


def test_class_labels():
  np.testing.assert_array_equal(generate.class_labels(2, 3, 1), [[0, 1, 0], [0, 1, 0]])
  assert generate.class_labels(4, 0, None).shape == (4, 0)
  with pytest.raises(ValueError, match=r'conditional with 3 classes: pass --class_idx in \[0, 2\]'):
    generate.class_labels(2, 3, None)
  with pytest.raises(ValueError, match='unconditional; drop --class_idx'):
    generate.class_labels(2, 0, 1)


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('gen') / 'run'
  config = helpers.config_for('smoke')
  nets, state = helpers.make_run(workdir, config)
  return workdir, config, nets, state


def reference_png(data, seed, trunc, noise_mode='const'):
  """The reference generate.py's output for one seed, computed by the project's torch module."""
  torch = pytest.importorskip('torch')
  from dgan_jax.interop import torch_generator
  g = torch_generator.TorchGenerator(**data['G_kwargs'])
  g.load_state_dict(data['G_ema'])
  z = torch.from_numpy(np.random.RandomState(seed).randn(1, g.z_dim))
  img = g(z, None, truncation_psi=trunc, noise_mode=noise_mode)
  return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()


def test_generate_writes_reference_images_grid_and_interpolation(smoke_run, tmp_path):
  workdir, config, _, state = smoke_run
  paths = generate.run(workdir, '0-4', trunc=0.7, outdir=tmp_path / 'out', interp_steps=3)
  assert [p.name for p in paths['seeds']] == [f'seed{s:04d}.png' for s in range(5)]
  pytest.importorskip('torch')
  data = export.to_torch(export.bundle(config, state))
  for seed in (0, 4):
    ours = np.asarray(Image.open(tmp_path / 'out' / f'seed{seed:04d}.png'))
    ref = reference_png(data, seed, 0.7)
    assert ours.shape == (32, 32, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1   # float32 rounding at .5
    assert (ours == ref).mean() > 0.99
  grid = np.asarray(Image.open(paths['grid']))
  assert grid.shape == (2 * 32, 3 * 32, 3)
  np.testing.assert_array_equal(grid[:32, 32:64], np.asarray(Image.open(paths['seeds'][1])))
  strip = np.asarray(Image.open(paths['interpolation']))
  assert strip.shape == (5 * 32, 3 * 32, 3)   # one row per seed pair (looping), 3 steps
  np.testing.assert_array_equal(strip[32:64, :32], np.asarray(Image.open(paths['seeds'][1])))
  assert Image.open(paths['animation']).n_frames > 1   # PIL merges identical neighbours


def test_random_noise_is_per_seed(smoke_run, tmp_path):
  workdir = smoke_run[0]
  a = generate.run(workdir, '2-5', noise_mode='random', outdir=tmp_path / 'a', interp_steps=0)
  b = generate.run(workdir, '3', noise_mode='random', outdir=tmp_path / 'b', interp_steps=0)
  c = generate.run(workdir, '3', noise_mode='const', outdir=tmp_path / 'c', interp_steps=0)
  seed3 = np.asarray(Image.open(a['seeds'][1]))
  np.testing.assert_array_equal(seed3, np.asarray(Image.open(b['seeds'][0])))
  assert not np.array_equal(seed3, np.asarray(Image.open(c['seeds'][0])))
  assert 'interpolation' not in a


def test_bad_requests_give_clear_messages(smoke_run, tmp_path):
  workdir = smoke_run[0]
  with pytest.raises(ValueError, match=r'(?s)another preset.*G.channel_base: 256 != 32768'):
    generate.run(workdir, '0', config=helpers.config_for(None), outdir=tmp_path)
  with pytest.raises(ValueError, match='unconditional'):
    generate.run(workdir, '0', class_idx=2, outdir=tmp_path)
  with pytest.raises(ValueError, match='noise_mode'):
    generate.run(workdir, '0', noise_mode='fixed', outdir=tmp_path)
  with pytest.raises(FileNotFoundError, match='has no checkpoint'):
    generate.run(tmp_path / 'nothing', '0')
  narrower = helpers.config_for('smoke')
  narrower.model.G.channel_max = 8
  with pytest.raises(ValueError, match=r'does not fit the networks.*not compatible with the stored shape'):
    run_dir.restore_state(workdir, narrower)


def test_conditional_run_and_command_line(tmp_path):
  config = helpers.config_for('smoke', c_dim=3)
  helpers.make_run(tmp_path / 'run', config)
  cmd = [sys.executable, '-m', 'dgan_jax.main', '--mode=generate', f'--workdir={tmp_path / "run"}',
         '--seeds=0-1', '--trunc=1.0', '--noise_mode=const', f'--outdir={tmp_path / "out"}']
  root = pathlib.Path(__file__).resolve().parents[1]
  result = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=False)
  assert result.returncode != 0 and 'pass --class_idx in [0, 2]' in result.stderr
  result = subprocess.run(cmd + ['--class_idx=2', '--config=configs/cifar10.py:smoke',
                                '--config.data.use_labels=true'],
                          capture_output=True, text=True, cwd=root, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      'grid.png', 'interpolation.gif', 'interpolation.png', 'seed0000.png', 'seed0001.png']
