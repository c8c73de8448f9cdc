"""Importing reference pickles: the persistence format read as data, round trips, resume, errors."""
import io
import os
import pathlib
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from dgan_jax import checkpoint, export, import_torch, run_dir, steps
from dgan_jax.interop import torch_pickle
from tests import interop_helpers as helpers
from tests.interop_helpers import mimic_pickle

torch = pytest.importorskip('torch')

MIRROR = pathlib.Path(os.environ.get(
    'DGAN_REFERENCE_REPO',
    pathlib.Path(__file__).resolve().parents[2] / '.mirror' / 'Zhendong-Wang+Diffusion-GAN' /
    'repo'))


@pytest.fixture(scope='module')
def smoke_bundle():
  """An export bundle of a random :smoke state at 1600 images and p = 0.3."""
  config = helpers.config_for('smoke')
  _, state = helpers.random_state(config)
  ctrl = import_torch.restore_level(state.diffusion, 0.3, config.diffusion)
  state = state.replace(images_seen=np.int32(1600), step=np.int32(100), diffusion=ctrl)
  return config, export.bundle(config, state)


def assert_same_state_dicts(a, b):
  for net in ('G', 'D', 'G_ema'):
    assert list(a[net]) == list(b[net])
    for key in a[net]:
      assert a[net][key].dtype == b[net][key].dtype and a[net][key].shape == b[net][key].shape
      assert a[net][key].tobytes() == b[net][key].tobytes(), f'{net}.{key}'


@pytest.mark.parametrize('protocol', [2, 4])
def test_import_then_export_is_bit_exact(tmp_path, fake_reference_modules, smoke_bundle,
                                         protocol):
  config, bundle = smoke_bundle
  pkl = mimic_pickle(tmp_path / 'snap.pkl', fake_reference_modules, bundle, protocol)
  out = import_torch.import_pickle(pkl, tmp_path / 'imported', config)
  saved = run_dir.load_config(out)
  _, state = run_dir.restore_state(out, saved)
  assert_same_state_dicts(export.bundle(saved, state), bundle)
  # Progress: image count, step, p and T as the reference had them; fresh Adam moments.
  assert int(state.images_seen) == 1600 and int(state.step) == 1600 // config.train.batch_size
  assert float(state.diffusion.p) == pytest.approx(0.3, abs=1e-6)
  assert int(state.diffusion.T) == 10 + round(0.3 * 990)
  assert all(float(np.abs(x).max()) == 0 for x in jax.tree.leaves(state.g_opt_state)
             if np.asarray(x).dtype == np.float32)


def test_imported_run_restores_in_the_training_loop_layout(tmp_path, fake_reference_modules,
                                                           smoke_bundle):
  config, bundle = smoke_bundle
  out = import_torch.import_pickle(
      mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle), tmp_path / 'run', config)
  # Exactly the restore the training loop does on resume (replicated over the 8-device mesh).
  saved = run_dir.load_config(out)
  from dgan_jax.families import build_networks
  mesh = steps.make_mesh()
  abstract = run_dir.abstract_state(saved, build_networks(saved), NamedSharding(mesh, P()))
  ckpt = checkpoint.Checkpointer(out)
  state = ckpt.restore(abstract)
  ckpt.close()
  assert len(state.g_params['synthesis']['b4']['conv1']['weight'].sharding.device_set) == 8
  assert saved.to_dict() == config.to_dict()   # --config's training settings were kept


def test_import_without_config_derives_the_networks(tmp_path, fake_reference_modules,
                                                     smoke_bundle):
  from dgan_jax.interop import reference_config
  config, bundle = smoke_bundle
  out = import_torch.import_pickle(
      mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle), tmp_path / 'run')
  saved = run_dir.load_config(out)
  assert reference_config.model_differences(config, saved) == []
  assert saved.model.preset == 'auto' and saved.data.path == 'cifar10'   # training_set_kwargs
  _, state = run_dir.restore_state(out, saved)
  assert_same_state_dicts(export.bundle(saved, state), bundle)


def test_reader_needs_no_torch_and_never_runs_pickled_code(tmp_path, fake_reference_modules,
                                                           smoke_bundle, monkeypatch):
  _, bundle = smoke_bundle
  pkl = mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle)
  monkeypatch.setitem(sys.modules, 'torch', None)             # as if torch were not installed
  ref = import_torch.read_pickle(pkl)
  assert list(ref.state_dicts['G']) == list(bundle['G'])      # 'scratch' buffer left out
  assert ref.init_kwargs['D']['epilogue_kwargs'] == bundle['D_kwargs']['epilogue_kwargs']
  assert ref.progress['cur_nimg'] == 1600 and ref.progress['best_fid'] == 12.5

  class Evil:
    def __reduce__(self):
      return (os.system, (f'touch {tmp_path / "pwned"}',))
  with pytest.raises(pickle.UnpicklingError, match='never runs code'):
    torch_pickle.load(io.BytesIO(pickle.dumps({'G': Evil()})))
  assert not (tmp_path / 'pwned').exists()


def test_bad_pickles_give_clear_messages(tmp_path, fake_reference_modules, smoke_bundle):
  config, bundle = smoke_bundle
  fake = fake_reference_modules
  missing = mimic_pickle(tmp_path / 'm.pkl', fake, bundle, drop=('G.mapping.fc1.bias',))
  with pytest.raises(ValueError, match=r"G does not match.*missing key\(s\): mapping.fc1.bias"):
    import_torch.import_pickle(missing, tmp_path / 'a')
  cifar = helpers.config_for(None)
  with pytest.raises(ValueError, match=r'(?s)differ from the given --config.*G.channel_base: 32768 != 256'):
    import_torch.import_pickle(mimic_pickle(tmp_path / 'p.pkl', fake, bundle), tmp_path / 'b',
                               cifar)
  # A stylegan2-ada D (no t mapping, one output) needs --init_d=fresh.
  ada = dict(bundle, D={k: v for k, v in bundle['D'].items() if not k.startswith('mapping.')})
  ada_pkl = mimic_pickle(tmp_path / 'ada.pkl', fake, ada, progress=False)
  with pytest.raises(ValueError, match='--init_d=fresh'):
    import_torch.import_pickle(ada_pkl, tmp_path / 'c', config)
  out = import_torch.import_pickle(ada_pkl, tmp_path / 'c', config, init_d='fresh')
  saved = run_dir.load_config(out)
  _, state = run_dir.restore_state(out, saved)
  # No progress entry: step 0, and p from the snapshot's Diffusion module (its p = 0.25).
  assert int(state.step) == 0 and float(state.diffusion.p) == 0.25
  np.testing.assert_array_equal(export.bundle(saved, state)['G']['mapping.fc0.weight'],
                                bundle['G']['mapping.fc0.weight'])
  with pytest.raises(FileExistsError, match='new --out'):
    import_torch.import_pickle(ada_pkl, tmp_path / 'c', config, init_d='fresh')
  (tmp_path / 'list.pkl').write_bytes(pickle.dumps([1, 2]))
  with pytest.raises(ValueError, match='dict of networks'):
    import_torch.import_pickle(tmp_path / 'list.pkl', tmp_path / 'd')


# --- The reference's own classes (from the mirror, extracted at test time) -----------------------


@pytest.fixture(scope='module')
def reference(reference_networks):
  return reference_networks


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
@pytest.mark.parametrize('c_dim,d_architecture', [(2, 'orig'), (0, 'resnet')])
def test_reference_classes_load_the_export_and_their_pickle_imports_exactly(
    tmp_path, reference, c_dim, d_architecture):
  """The docs/interop.md recipe: reference Generator/Discriminator + load_state_dict(export),
  images equal dgan_jax's; their real persistent pickle imports back bit for bit."""
  config = helpers.config_for('smoke', c_dim=c_dim)
  config.model.D.architecture = d_architecture   # resnet: the D of every non-cifar preset
  nets, state = helpers.random_state(config, seed=3)
  state = state.replace(images_seen=np.int32(3200), step=np.int32(200))
  bundle = export.bundle(config, state)
  data = torch.load(export.write(bundle, tmp_path / 'network.pt'), weights_only=True)
  built = {}
  for name, cls, kwargs in (('G', reference.Generator, 'G_kwargs'),
                            ('D', reference.Discriminator, 'D_kwargs'),
                            ('G_ema', reference.Generator, 'G_kwargs')):
    built[name] = cls(**data[kwargs]).eval().requires_grad_(False)
    built[name].load_state_dict(data[name], strict=True)
  z = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
  c = np.eye(2, dtype=np.float32)[[0, 1, 1]][:, :c_dim]
  expected = helpers.jax_images(nets, state, z, c, 0.7)
  got = built['G_ema'](torch.from_numpy(z), torch.from_numpy(c) if c_dim else None,
                       truncation_psi=0.7,
                       noise_mode='const', force_fp32=True).numpy().transpose(0, 2, 3, 1)
  assert np.abs(got - expected).max() < 1e-3
  snapshot = dict(training_set_kwargs=data['training_set_kwargs'], **built, diffusion=None,
                  progress=dict(data['progress']))
  with open(tmp_path / 'network-snapshot.pkl', 'wb') as f:
    pickle.dump(snapshot, f)
  out = import_torch.import_pickle(tmp_path / 'network-snapshot.pkl', tmp_path / 'run', config)
  saved = run_dir.load_config(out)
  _, restored = run_dir.restore_state(out, saved)
  assert_same_state_dicts(export.bundle(saved, restored), bundle)
  assert int(restored.images_seen) == 3200


def test_command_line(tmp_path, fake_reference_modules, smoke_bundle):
  _, bundle = smoke_bundle
  pkl = mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle)
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.import_torch', f'--pkl={pkl}',
       f'--out={tmp_path / "run"}', '--config=configs/cifar10.py:smoke'],
      capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parents[1],
      check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / 'run' / 'config.json').exists()
  assert checkpoint.Checkpointer(tmp_path / 'run').latest_step() == 1600 // 16


@pytest.mark.slow
def test_training_resumes_from_an_imported_pickle(tmp_path, fake_reference_modules, smoke_bundle,
                                                  cifar10_zip):
  """One training step continues from the pickle's image count and diffusion level."""
  from dgan_jax import train
  config, bundle = smoke_bundle
  config = helpers.config_for('smoke')
  config.data.path = str(cifar10_zip)
  out = import_torch.import_pickle(
      mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle), tmp_path / 'run', config)
  config.train.total_kimg = 2.0
  state = train.train_and_evaluate(config, str(out), stop_after_steps=1)
  assert int(state.step) == 1600 // 16 + 1 and int(state.images_seen) == 1600 + 16
  assert abs(float(state.diffusion.p) - 0.3) < 0.01
  assert float(np.abs(np.asarray(state.g_opt_state[1][0].nu['mapping']['fc0']['weight'])).max()) > 0


def test_projected_pickle_imports_exactly(tmp_path, fake_reference_modules):
  """A Diffusion-ProjectedGAN snapshot (our export of a random :smoke state, pickled in the
  reference's persistence format) imports as a projected run: the config from its kwargs, G,
  G_ema, D (backbone and mixers), the image count and p back bit for bit."""
  from configs import cifar10_projected
  config = cifar10_projected.get_config('smoke')
  _, state = helpers.random_state(config)
  ctrl = import_torch.restore_level(state.diffusion, 0.4, config.diffusion)
  state = state.replace(images_seen=np.int32(800), step=np.int32(100), diffusion=ctrl)
  bundle = export.bundle(config, state)
  pkl = mimic_pickle(tmp_path / 'diffusion-projectedgan-smoke.pkl', fake_reference_modules, bundle)
  out = import_torch.import_pickle(pkl, tmp_path / 'run')
  saved = run_dir.load_config(out)
  assert saved.model.family == 'projected' and saved.model.projected.backbone == 'checkpoint'
  assert (saved.model.projected.cfg, saved.model.projected.ngf, saved.model.projected.z_dim) == (
      'fastgan', 4, 16)
  assert saved.diffusion.target == 0.45 and saved.diffusion.t_per_channel
  _, restored = run_dir.restore_state(out, saved)
  assert int(restored.images_seen) == 800 and int(restored.step) == 800 // saved.train.batch_size
  np.testing.assert_allclose(float(restored.diffusion.p), 0.4, atol=1e-4)
  for tree in ('g_params', 'g_ema_params', 'g_buffers', 'd_params', 'd_buffers'):
    for a, b in zip(jax.tree.leaves(getattr(state, tree)), jax.tree.leaves(getattr(restored, tree))):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=tree)
  assert_same_state_dicts(bundle, export.bundle(saved, restored))
