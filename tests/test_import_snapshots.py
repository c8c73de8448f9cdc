"""Reference network snapshots as the authors' training loop writes them, for each --aug (tests/fixtures/
reference_snapshot_*.pkl.gz, made by tests/fixtures/make_reference_snapshots.py with the reference's own
classes): they import without torch, their Diffusion settings map onto the config, transfer learning
(train.resume_from) and Freeze-D. With the reference mirror and torch, the pickles are also made fresh."""
import gzip
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import data_helpers
import reference_code
import train_helpers
from configs import toy25
from dgan_jax import families, import_torch, run_dir, steps, train
from dgan_jax.families import stylegan2 as stylegan2_family
from dgan_jax.models import torch_names

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures'
ROOT = pathlib.Path(__file__).resolve().parents[1]
AUGS = ('no', 'diff', 'ada')


def snapshot(tmp_path, aug):
  path = tmp_path / f'network-snapshot-{aug}.pkl'
  path.write_bytes(gzip.decompress((FIXTURES / f'reference_snapshot_{aug}.pkl.gz').read_bytes()))
  return path


@pytest.mark.parametrize('aug', AUGS)
def test_snapshots_import_with_their_diffusion_settings(tmp_path, aug):
  ref = import_torch.read_pickle(snapshot(tmp_path, aug))
  assert ref.diffusion['augment'] == import_torch.AUG_KINDS[aug]
  assert ref.diffusion['p'] == pytest.approx(0.3125)
  assert (ref.diffusion.get('ada_maxp') == 0.25) == (aug == 'ada')
  out = import_torch.import_pickle(snapshot(tmp_path, aug), tmp_path / 'run')
  config = run_dir.load_config(out)
  assert (config.diffusion.t_min, config.diffusion.t_max) == (10, 1000)
  assert (config.diffusion.noise_std, config.diffusion.ts_dist) == (0.05, 'priority')
  assert config.data.path == 'datasets/tiny16.zip' and config.data.xflip
  if 'augment' in config:
    assert config.augment.kind == import_torch.AUG_KINDS[aug]
  _, state = run_dir.restore_state(out, config)
  assert int(state.diffusion.T) == 10 + round(0.3125 * 990)   # p from progress['cur_p']
  assert int(state.images_seen) == 40_000
  expected = ref.state_dicts['G_ema']
  got = torch_names.to_torch_state_dict(jax.device_get(state.g_ema_params),
                                        jax.device_get(state.g_buffers), 'G')
  for key, value in expected.items():
    np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_snapshots_made_fresh_by_the_reference_import(tmp_path):
  """Where the reference and torch exist: the same snapshots made now import the same way."""
  pytest.importorskip('torch')
  if not reference_code.available():
    pytest.skip('reference mirror not found')
  sys.path.insert(0, str(FIXTURES))
  try:
    import make_reference_snapshots  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(FIXTURES))
  for aug, path in make_reference_snapshots.write_all(tmp_path).items():
    ref = import_torch.read_pickle(path)
    assert ref.diffusion['augment'] == import_torch.AUG_KINDS[aug]
    import_torch.import_pickle(path, tmp_path / f'run_{aug}')


def tiny_config(pkl):
  """A config with the snapshot's networks (as its import derives them)."""
  config = import_torch.config_for_pickle(import_torch.read_pickle(pkl))
  config.train.batch_size, config.train.batch_gpu = 8, 1
  config.model.mixed_precision = 'float32'
  return config


def test_transfer_from_a_t_less_d_starts_the_t_mapping_fresh(tmp_path, monkeypatch):
  """A stylegan2-ada D (no t input, no mapping, one output unit) into a t-conditioned D: every
  matching tensor is copied, the mapping and the epilogue's output layer start fresh."""
  pkl = snapshot(tmp_path, 'no')
  config = tiny_config(pkl)
  ref = import_torch.read_pickle(pkl)
  d = {k: v for k, v in ref.state_dicts['D'].items() if not k.startswith('mapping.')}
  d['b4.out.weight'], d['b4.out.bias'] = d['b4.out.weight'][:1], d['b4.out.bias'][:1]
  ref.state_dicts['D'] = d
  monkeypatch.setattr(import_torch, 'read_pickle', lambda path: ref)
  family = families.get(config)
  nets = family.build_networks(config)
  g_tx, d_tx = family.make_optimizers(config)
  fresh = jax.jit(lambda: family.init_state(config, nets, g_tx, d_tx))()
  state, fresh_d = import_torch.transfer_state(pkl, config, fresh)
  assert set(fresh_d) == {k for k in torch_names.to_torch_state_dict(
      jax.device_get(fresh.d_params), None, 'D') if k.startswith('mapping.')} | {
          'b4.out.weight', 'b4.out.bias'}
  got = torch_names.to_torch_state_dict(jax.device_get(state.d_params), None, 'D')
  np.testing.assert_array_equal(got['b16.conv0.weight'], d['b16.conv0.weight'])
  got_g = torch_names.to_torch_state_dict(jax.device_get(state.g_params),
                                          jax.device_get(state.g_buffers), 'G')
  np.testing.assert_array_equal(got_g['synthesis.b16.conv1.weight'],
                                ref.state_dicts['G']['synthesis.b16.conv1.weight'])
  assert int(state.step) == 0 and int(state.images_seen) == 0
  assert float(state.diffusion.p) == config.diffusion.initial_p


@pytest.mark.slow   # a 16x16 compile on 8 devices: minutes on a 2-core CPU (transfer_state: below)
def test_resume_from_in_the_loop_and_ema_rampup_off(tmp_path):
  pkl = snapshot(tmp_path, 'diff')
  config = tiny_config(pkl)
  config.data.source, config.data.path = 'zip', str(tmp_path / 'tiny16.zip')
  data_helpers.write_dataset(config.data.path, data_helpers.random_images(16, size=16))
  config.train.resume_from = str(pkl)
  config.train.total_kimg = 0.008          # one step
  config.train.ema_rampup = 0.05
  config.eval.metrics = ''
  config.loss.r1_gamma = 0.0               # a smaller first step to compile
  state = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert config.train.ema_rampup == 0.0 and int(state.step) == 1
  with pytest.raises(ValueError, match='no such file'):
    config.train.resume_from = str(tmp_path / 'missing.pkl')
    train.train_and_evaluate(config, str(tmp_path / 'run2'))


@pytest.mark.parametrize('architecture,count,expected', [
    ('orig', 3, ['b32/fromrgb', 'b32/conv0', 'b32/conv1']),
    ('resnet', 5, ['b32/fromrgb', 'b32/conv0', 'b32/conv1', 'b32/skip', 'b16/conv0']),
    ('skip', 4, ['b32/fromrgb', 'b32/conv0', 'b32/conv1', 'b16/fromrgb']),
])
def test_freeze_d_layer_order(architecture, count, expected):
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('smoke')
  config.model.D.architecture = architecture
  assert stylegan2_family.frozen_d_layers(config, count) == set(expected)


def test_freeze_d_leaves_the_first_layers_unchanged():
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('smoke')
  config.data.resolution = 8                      # an 8x8 D compiles in seconds
  config.model.mixed_precision = 'float32'
  config.train.batch_size, config.train.batch_gpu = 4, 2
  config.train.freeze_d = 2                       # b8/fromrgb and b8/conv0 (orig architecture)
  assert stylegan2_family.frozen_d_layers(config, 2) == {'b8/fromrgb', 'b8/conv0'}
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, jax.devices()[:1])
  before = jax.device_get(state.d_params)
  step = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  batch = {'image': jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)),
                                jnp.uint8), 'label': jnp.zeros((4, 0))}
  state, _ = step(state, batch)
  after = jax.device_get(state.d_params)
  for layer in ('fromrgb', 'conv0'):
    for a, b in zip(jax.tree.leaves(before['b8'][layer]), jax.tree.leaves(after['b8'][layer])):
      np.testing.assert_array_equal(a, b)
  changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before['b8']['conv1']),
                                                        jax.tree.leaves(after['b8']['conv1']))]
  assert all(changed)


def test_total_kimg_below_the_progress_is_an_error(tmp_path):
  config = toy25.get_config('smoke')
  config.train.total_kimg = 64 * 6 / 1000
  train.train_and_evaluate(config, str(tmp_path), stop_after_steps=4)
  config.train.total_kimg = 64 * 2 / 1000
  with pytest.raises(ValueError, match='past train.total_kimg'):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.slow   # a command-line run at 16x16: minutes (imported runs resume: test_import_torch)
def test_an_imported_snapshot_resumes_offline_with_its_own_settings(tmp_path):
  """The CLI, with only --workdir (and a short length): the pickle's dataset path (relative, as the
  reference records it) and settings are used; the image count continues from the pickle's."""
  out = import_torch.import_pickle(snapshot(tmp_path, 'no'), tmp_path / 'imported')
  (tmp_path / 'datasets').mkdir()
  data_helpers.write_dataset(tmp_path / 'datasets' / 'tiny16.zip',
                             data_helpers.random_images(40, size=16))
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_PLATFORMS': 'cpu'}
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.main', f'--workdir={out}',
       '--config.train.total_kimg=40.032', '--config.model.mixed_precision=float32'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((out / 'config.json').read_text())
  assert saved['data']['path'] == 'datasets/tiny16.zip'
  _, state = run_dir.restore_state(out, run_dir.load_config(out))
  assert int(state.images_seen) == 40_032


def test_pkl_flag_config_and_import(tmp_path, monkeypatch, capsys):
  """`--pkl` (eval / generate of a pickle): without a saved config the pickle's networks are the
  default config; the pickle is imported into the new workdir once; training is refused."""
  from configs import from_workdir   # pylint: disable=import-outside-toplevel
  from dgan_jax import errors, main   # pylint: disable=import-outside-toplevel
  pkl, workdir = snapshot(tmp_path, 'no'), tmp_path / 'run'
  monkeypatch.setattr(sys, 'argv', ['main', f'--workdir={workdir}', f'--pkl={pkl}'])
  config = from_workdir.get_config()
  assert config.data.resolution == 16 and config.model.G.z_dim == 8
  assert (config.diffusion.t_min, config.data.path) == (10, 'datasets/tiny16.zip')
  with pytest.raises(errors.UserError, match='--pkl is for --mode=eval and --mode=generate'):
    main.import_pickle(str(pkl), str(workdir), 'train', config)
  main.import_pickle(str(pkl), str(workdir), 'eval', config)
  _, state = run_dir.restore_state(workdir, run_dir.load_config(workdir))
  assert int(state.images_seen) == 40_000
  main.import_pickle(str(pkl), str(workdir), 'generate', config)   # a rerun: the import is kept
  assert 'holds checkpoints already' in capsys.readouterr().out
  assert 'missing_run_config' not in from_workdir.get_config()       # now the saved config.json
  monkeypatch.setattr(sys, 'argv', ['main', f'--workdir={tmp_path / "new"}',
                                    f'--pkl={tmp_path / "absent.pkl"}'])
  assert 'missing_run_config' in from_workdir.get_config()            # main() then says why


@pytest.mark.slow   # one command-line run: compiles the imported G and a tiny feature network
def test_eval_of_a_pickle_from_the_command_line(tmp_path):
  pkl = snapshot(tmp_path, 'no')
  data_helpers.write_dataset(tmp_path / 'reals.zip', data_helpers.random_images(64, size=16))
  env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), str(ROOT / 'tests')]),
         'JAX_PLATFORMS': 'cpu'}
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.main', '--mode=eval', f'--pkl={pkl}', '--workdir=run',
       '--config.data.path=reals.zip', '--config.eval.metrics=fid1k-tiny',
       '--config.eval.domain_nets=tiny=test_evaluation:tiny_net', '--config.eval.cache_dir=cache',
       '--config.model.mixed_precision=float32'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Imported' in result.stdout and 'fid1k-tiny' in result.stdout
  line = json.loads((tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()[-1])
  _, state = run_dir.restore_state(tmp_path / 'run', run_dir.load_config(tmp_path / 'run'))
  assert line['step'] == int(state.step) and line['kimg'] == 40.0   # the pickle's progress
  assert line['results']['fid1k-tiny'] > 0
