"""Diffusion-InsGen snapshots <-> the InsGen family: import (G, D, G_ema, D_ema, both heads with
momentum copies, queues, pointers, progress), export in the reference's keys, round trips, errors.

The recorded snapshot (tests/fixtures/insgen_snapshot.pkl.gz, with the reference's outputs in
insgen_snapshot.npz; made by tests/fixtures/make_insgen_snapshot.py with the authors' classes, heads
wrapped in DistributedDataParallel as on several GPUs) runs in the default suite without torch;
where torch and the reference mirror exist the same snapshot is also made fresh, and the export is
loaded back into the reference's modules with load_state_dict(strict=True)."""
import gzip
import os
import pathlib
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ffhq1024_insgen
from dgan_jax import errors, export, families, import_torch, run_dir
from dgan_jax.interop import insgen_import
from dgan_jax.models import contrastive
from tests import interop_helpers as helpers

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures'
ROOT = pathlib.Path(__file__).resolve().parents[1]
INPLANES = 16
TOL = 1e-5


def recorded_snapshot(tmp_path):
  path = tmp_path / 'diffusion-insgen-tiny.pkl'
  path.write_bytes(gzip.decompress((FIXTURES / 'insgen_snapshot.pkl.gz').read_bytes()))
  return path


def import_run(pkl, out, config=None):
  out = import_torch.import_pickle(pkl, out, config)
  config = run_dir.load_config(out)
  nets, state = run_dir.restore_state(out, config)
  return config, nets, state


def close(diffs, name, got, expected):
  """Asserts |got - expected| <= TOL and records the largest difference under `name`."""
  got = np.asarray(got)
  np.testing.assert_allclose(got, expected, atol=TOL, err_msg=name)
  diffs[name] = max(diffs.get(name, 0.0), float(np.abs(got - expected).max()))


def assert_matches_reference(config, nets, state, ref):
  """The imported networks and heads reproduce the reference's outputs `ref` (make_insgen_snapshot
  .outputs) within TOL; the queues and pointers are the reference's. Returns the largest
  differences by output."""
  diffs = {}
  assert config.model.family == 'insgen' and config.insgen.enabled
  assert (config.insgen.real_queue_size, config.insgen.fake_queue_size) == (20, 12)
  assert (config.diffusion.t_max, config.diffusion.ts_dist, config.augment.kind) == (
      500, 'uniform', 'ada')
  assert int(state.images_seen) == 40_000 and float(state.pl_mean) == 0.75
  assert int(state.diffusion.T) == 10 + round(0.25 * 490)
  z, c = ref['z'], np.zeros((len(ref['z']), 0), np.float32)
  for name, params, psi in (('G', 'g_params', 1.0), ('G_ema', 'g_ema_params', 1.0),
                            ('G_ema', 'g_ema_params', 0.7)):
    key = f'{name}/img' + ('' if psi == 1.0 else f'_psi{psi}')
    close(diffs, 'G, G_ema images', helpers.jax_images(nets, state, z, c, psi, None, params),
          ref[key])
  apply = jax.jit(lambda p, x, t: nets.D.apply({'params': p}, x, jnp.zeros((len(x), 0)), t,
                                               return_feats=True))
  feats = {}
  for name, params in (('D', state.d_params), ('D_ema', state.extra['d_ema'])):
    logits, feats[name] = apply(params, jnp.asarray(ref['img']), jnp.asarray(ref['t'], jnp.int32))
    close(diffs, 'D, D_ema logits', logits, ref[f'{name}/logits'])
    close(diffs, 'D, D_ema 4x4 features', feats[name], ref[f'{name}/feats'])
  for ours, theirs in insgen_import.HEADS.items():
    head = state.extra['heads'][ours]
    close(diffs, 'head queries (mlp)', contrastive.embed(head.params, feats['D'], INPLANES),
          ref[f'{theirs}/q'])
    close(diffs, 'head keys (momentum_mlp)',
          contrastive.embed(head.momentum_params, feats['D_ema'], INPLANES), ref[f'{theirs}/k'])
    np.testing.assert_array_equal(np.asarray(head.queue).T, ref[f'{theirs}/queue'])
    assert int(head.ptr) == int(ref[f'{theirs}/queue_ptr'][0])
  for name in insgen_import.HEADS:               # fresh head optimizers (the reference saves none)
    assert all(float(np.abs(x).max()) == 0 for x in jax.tree.leaves(state.extra['head_opt'][name])
               if np.asarray(x).dtype == np.float32)
  return diffs


def test_recorded_snapshot_imports_with_the_reference_outputs(tmp_path):
  """(`pytest -s` prints the largest differences: the table of docs/interop.md.)"""
  config, nets, state = import_run(recorded_snapshot(tmp_path), tmp_path / 'run')
  diffs = assert_matches_reference(config, nets, state, np.load(FIXTURES / 'insgen_snapshot.npz'))
  print('\n'.join(f'{name}: {value:.2g}' for name, value in diffs.items()))


@pytest.fixture(scope='module')
def make_snapshot():
  sys.path.insert(0, str(FIXTURES))
  try:
    import make_insgen_snapshot  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(FIXTURES))
  return make_insgen_snapshot


@pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::FutureWarning')
@pytest.mark.parametrize('ddp', [False, True], ids=['one_gpu', 'ddp_heads'])
def test_fresh_reference_snapshot_imports_and_exports_back(tmp_path, reference_insgen,
                                                           make_snapshot, ddp):
  """The reference's modules with random weights, pickled by its training loop's rule (heads plain
  or DDP-wrapped): the import reproduces their outputs; the export of the imported state loads into
  the reference's Generator / Discriminator / CLHead with strict=True, tensor for tensor equal."""
  import torch  # pylint: disable=import-outside-toplevel
  close = make_snapshot.process_group() if ddp else (lambda: None)
  try:
    nets_ref = make_snapshot.build(reference_insgen, seed=3)
    (tmp_path / 's.pkl').write_bytes(pickle.dumps(make_snapshot.snapshot(nets_ref, ddp)))
  finally:
    close()
  config, nets, state = import_run(tmp_path / 's.pkl', tmp_path / 'run')
  assert_matches_reference(config, nets, state, make_snapshot.outputs(nets_ref))
  data = torch.load(export.write(export.bundle(config, state), tmp_path / 'x.pt'),
                    weights_only=True)
  classes = {'G': reference_insgen.networks.Generator, 'D': reference_insgen.networks.Discriminator}
  for name in ('G', 'D', 'G_ema', 'D_ema', 'DHead', 'GHead'):
    if name in insgen_import.HEADS.values():
      kwargs = dict(data[f'{name}_kwargs'])
      kwargs.pop('class_name')
      module = reference_insgen.contrastive_head.CLHead(**kwargs)
    else:
      module = classes[name[0]](**data[f'{name[0]}_kwargs'])
    module.load_state_dict(data[name], strict=True)
    for key, value in nets_ref[name].state_dict().items():
      assert torch.equal(module.state_dict()[key], value), f'{name}.{key}'


# --- Round trips and errors without the reference (fake persistence pickles) --------------------


def smoke_config():
  config = ffhq1024_insgen.get_config('smoke')
  config.data.resolution = 16
  config.model.mixed_precision = 'float32'
  config.insgen.real_queue_size, config.insgen.fake_queue_size = 20, 12
  return config


@pytest.fixture(scope='module')
def smoke_state():
  """A random InsGen :smoke state at 16x16 with set pointers (one at the end of its queue)."""
  config = smoke_config()
  _, state = helpers.random_state(config, seed=4)
  heads = state.extra['heads']
  heads = {'real': heads['real'].replace(ptr=np.int32(7)),
           'fake': heads['fake'].replace(ptr=np.int32(12))}
  ctrl = import_torch.restore_level(state.diffusion, 0.3, config.diffusion)
  state = state.replace(extra={**state.extra, 'heads': heads}, diffusion=ctrl,
                        images_seen=np.int32(1600), step=np.int32(100))
  return config, state


def assert_same_trees(a, b, what):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b), what
  for x, y in zip(leaves_a, leaves_b):
    assert np.asarray(x).dtype == np.asarray(y).dtype, what
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


@pytest.mark.parametrize('with_config', [False, True])
def test_round_trip_state_export_import(tmp_path, fake_reference_modules, smoke_state,
                                        with_config):
  """state -> export -> a reference-format pickle -> import: the same state (G, G_ema, buffers, D,
  D_ema, heads with momentum copies, queues and pointers), and the same export bit for bit."""
  config, state = smoke_state
  bundle = export.bundle(config, state)
  assert list(bundle['DHead']) == ['queue', 'queue_ptr'] + [
      f'{m}.{i}.{p}' for m in ('mlp', 'momentum_mlp') for i in (0, 2) for p in ('weight', 'bias')]
  assert bundle['DHead']['queue'].shape == (128, 20) and bundle['GHead']['queue'].shape == (128, 12)
  assert bundle['GHead']['queue_ptr'].dtype == np.int64 and bundle['GHead']['queue_ptr'][0] == 12
  assert bundle['DHead_kwargs'] == dict(class_name=insgen_import.CLHEAD, inplanes=INPLANES,
                                        temperature=0.2, momentum=0.999, queue_size=20)
  assert list(bundle['D_ema']) == list(bundle['D'])
  pkl = helpers.mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle)
  saved, _, restored = import_run(pkl, tmp_path / 'run', config if with_config else None)
  assert saved.model.family == 'insgen'
  assert (saved.insgen.real_queue_size, saved.insgen.fake_queue_size) == (20, 12)
  for tree in ('g_params', 'g_ema_params', 'g_buffers', 'd_params'):
    assert_same_trees(getattr(state, tree), getattr(restored, tree), tree)
  assert_same_trees(state.extra['d_ema'], restored.extra['d_ema'], 'd_ema')
  assert_same_trees(state.extra['heads'], restored.extra['heads'], 'heads')
  assert int(restored.images_seen) == 1600
  np.testing.assert_allclose(float(restored.diffusion.p), 0.3, atol=1e-6)
  again = export.bundle(saved, restored)
  for name in export.STATE_DICTS:
    assert list(again[name]) == list(bundle[name]), name
    for key, value in bundle[name].items():
      assert again[name][key].tobytes() == value.tobytes(), f'{name}.{key}'


def test_export_files_hold_the_heads(tmp_path, smoke_state):
  config, state = smoke_state
  bundle = export.bundle(config, state)
  npz = np.load(export.write(bundle, tmp_path / 'x.npz', 'npz'))
  np.testing.assert_array_equal(npz['GHead/queue'], np.asarray(state.extra['heads']['fake'].queue).T)
  assert npz['DHead/queue_ptr'].dtype == np.int64 and int(npz['DHead/queue_ptr'][0]) == 7
  assert 'D_ema/b4.out.weight' in npz.files
  without_d = export.bundle(config, state, with_d=False)
  assert not set(without_d) & {'D', 'D_ema', 'DHead', 'GHead', 'DHead_kwargs'}
  torch = pytest.importorskip('torch')
  data = export.to_torch(bundle)
  assert data['DHead']['queue_ptr'].dtype == torch.int64
  assert data['DHead']['queue'].dtype == torch.float32 and data['DHead']['queue'].is_contiguous()


def test_bad_snapshots_give_clear_messages(tmp_path, fake_reference_modules, smoke_state):
  config, state = smoke_state
  fake = fake_reference_modules
  bundle = export.bundle(config, state)
  no_ghead = helpers.mimic_pickle(tmp_path / 'a.pkl', fake, bundle, drop=('GHead',))
  with pytest.raises(errors.UserError, match='has DHead but no GHead.*both contrastive heads'):
    import_torch.import_pickle(no_ghead, tmp_path / 'a')
  wide = dict(bundle, DHead={**bundle['DHead'], 'queue': np.zeros((64, 20), np.float32)})
  with pytest.raises(errors.UserError, match=r'DHead.queue has shape \(64, 20\).*\[128, queue_size\]'):
    import_torch.import_pickle(helpers.mimic_pickle(tmp_path / 'b.pkl', fake, wide), tmp_path / 'b')
  no_momentum = helpers.mimic_pickle(tmp_path / 'c.pkl', fake, bundle,
                                     drop=('GHead.momentum_mlp.2.bias',))
  with pytest.raises(errors.UserError, match=r"GHead does not match.*missing key\(s\): "
                                             r'momentum_mlp.2.bias'):
    import_torch.import_pickle(no_momentum, tmp_path / 'c')
  narrow = dict(bundle, GHead={**bundle['GHead'], 'mlp.0.weight': np.zeros((8, 8), np.float32)})
  with pytest.raises(errors.UserError, match=r'GHead takes 8-channel features.*16 channels'):
    import_torch.import_pickle(helpers.mimic_pickle(tmp_path / 'd.pkl', fake, narrow),
                               tmp_path / 'd')
  other = smoke_config()
  other.insgen.real_queue_size = 30
  with pytest.raises(errors.UserError, match=r'real_queue_size=30 but .*DHead queue holds 20'):
    import_torch.import_pickle(helpers.mimic_pickle(tmp_path / 'e.pkl', fake, bundle),
                               tmp_path / 'e', other)


def test_into_a_stylegan2_config_only_the_networks(tmp_path, fake_reference_modules, smoke_state):
  """An InsGen snapshot into a StyleGAN2 --config: G, D, G_ema only (with a warning); the default
  config of `--pkl` (configs/from_workdir.py) is the InsGen one."""
  from configs import from_workdir  # pylint: disable=import-outside-toplevel
  config, state = smoke_state
  pkl = helpers.mimic_pickle(tmp_path / 's.pkl', fake_reference_modules,
                             export.bundle(config, state))
  sg2 = import_torch.config_for(import_torch.read_pickle(pkl))
  sg2.model.family = 'stylegan2'
  del sg2['insgen']
  with pytest.warns(UserWarning, match="model.family='stylegan2' config: only G, D and G_ema"):
    saved, _, restored = import_run(pkl, tmp_path / 'run', sg2)
  assert saved.model.family == 'stylegan2' and restored.extra == {}
  assert_same_trees(state.d_params, restored.d_params, 'd_params')
  assert from_workdir._pickle_config(str(pkl)).model.family == 'insgen'  # pylint: disable=protected-access


def test_init_d_fresh_starts_the_d_side_fresh(tmp_path, fake_reference_modules, smoke_state):
  """--init_d=fresh: G and G_ema from the pickle; D fresh, D_ema = D, heads fresh (queue sizes
  still the pickle's)."""
  config, state = smoke_state
  pkl = helpers.mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, export.bundle(config, state))
  with pytest.warns(UserWarning, match='heads start fresh and D_ema as D'):
    out = import_torch.import_pickle(pkl, tmp_path / 'run', init_d='fresh')
  saved = run_dir.load_config(out)
  _, restored = run_dir.restore_state(out, saved)
  assert (saved.insgen.real_queue_size, saved.insgen.fake_queue_size) == (20, 12)
  assert_same_trees(state.g_ema_params, restored.g_ema_params, 'g_ema_params')
  assert_same_trees(restored.d_params, restored.extra['d_ema'], 'd_ema = fresh D')
  assert not np.array_equal(np.asarray(jax.tree.leaves(state.d_params)[0]),
                            np.asarray(jax.tree.leaves(restored.d_params)[0]))
  assert int(restored.extra['heads']['real'].ptr) == 0


def test_resume_from_copies_d_ema_and_the_heads(tmp_path, fake_reference_modules, smoke_state):
  """config.train.resume_from (the reference's --resume): D_ema and the heads come from an InsGen
  pickle (a queue of another size starts fresh with its pointer); a Diffusion-StyleGAN2 pickle
  leaves the heads fresh and D_ema equal to the transferred D."""
  config, state = smoke_state
  bundle = export.bundle(config, state)
  pkl = helpers.mimic_pickle(tmp_path / 's.pkl', fake_reference_modules, bundle)
  target = smoke_config()
  target.insgen.fake_queue_size = 16
  family = families.get(target)
  _, fresh = helpers.random_state(target, seed=9)
  moved, notes = family.transfer_state(target, fresh, str(pkl))
  assert_same_trees(state.extra['d_ema'], moved.extra['d_ema'], 'd_ema')
  assert_same_trees(state.extra['heads']['real'], moved.extra['heads']['real'], 'real head')
  fake_head = moved.extra['heads']['fake']
  assert_same_trees(state.extra['heads']['fake'].params, fake_head.params, 'fake head mlp')
  assert_same_trees(fresh.extra['heads']['fake'].queue, fake_head.queue, 'fresh fake queue')
  assert int(fake_head.ptr) == int(fresh.extra['heads']['fake'].ptr)
  assert any("GHead entries that start fresh: ['queue', 'queue_ptr']" in n for n in notes)
  plain = {k: v for k, v in bundle.items() if k not in ('D_ema', 'DHead', 'GHead')}
  sg2_pkl = helpers.mimic_pickle(tmp_path / 'sg2.pkl', fake_reference_modules, plain)
  moved, notes = family.transfer_state(target, fresh, str(sg2_pkl))
  assert_same_trees(moved.d_params, moved.extra['d_ema'], 'd_ema = transferred D')
  assert_same_trees(state.d_params, moved.d_params, 'transferred D')
  assert_same_trees(fresh.extra['heads'], moved.extra['heads'], 'fresh heads')
  assert any(n.startswith('DHead entries that start fresh: all') for n in notes)


@pytest.mark.slow   # a command-line run: imports, then compiles the 16x16 G_ema
def test_generate_from_an_insgen_pickle_on_the_command_line(tmp_path):
  pkl = recorded_snapshot(tmp_path)
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_PLATFORMS': 'cpu'}
  result = subprocess.run(
      [sys.executable, '-m', 'dgan_jax.main', '--mode=generate', f'--pkl={pkl}', '--workdir=run',
       '--seeds=0-3', '--config.model.mixed_precision=float32'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Imported' in result.stdout
  assert len(list((tmp_path / 'run' / 'generate').glob('seed*.png'))) == 4
  config = run_dir.load_config(tmp_path / 'run')
  _, state = run_dir.restore_state(tmp_path / 'run', config)
  assert config.model.family == 'insgen' and int(state.extra['heads']['fake'].ptr) == 12


@pytest.mark.slow   # compiles an InsGen training step at 16x16 on 8 devices
def test_training_continues_from_an_imported_snapshot(tmp_path):
  """One step from the recorded snapshot: the image count, the queues' pointers and D_ema continue
  from the pickle's (the reference's own --resume would start the heads fresh)."""
  import data_helpers  # pylint: disable=import-outside-toplevel
  from dgan_jax import train  # pylint: disable=import-outside-toplevel
  pkl = recorded_snapshot(tmp_path)
  config = import_torch.config_for(import_torch.read_pickle(pkl))
  config.train.batch_size, config.train.batch_gpu = 8, 1
  config.model.mixed_precision = 'float32'
  config.data.path = str(data_helpers.write_dataset(tmp_path / 'tiny16.zip',
                                                    data_helpers.random_images(32, size=16)))
  config.eval.metrics = ''
  _, _, imported = import_run(pkl, tmp_path / 'run', config)
  state = jax.device_get(train.train_and_evaluate(config, str(tmp_path / 'run'),
                                                  stop_after_steps=1))
  assert int(state.step) == 40_000 // 8 + 1 and int(state.images_seen) == 40_008
  assert int(state.extra['heads']['real'].ptr) == 7 + 8                # queue of 20
  assert int(state.extra['heads']['fake'].ptr) == 12 + 8 - 12          # queue of 12: wraps
  real_queue = np.asarray(state.extra['heads']['real'].queue)
  np.testing.assert_array_equal(real_queue[:7], np.asarray(imported.extra['heads']['real'].queue)[:7])
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
      jax.tree.leaves(imported.extra['d_ema']), jax.tree.leaves(state.extra['d_ema']))]
  assert 0 < max(moved) < 1e-2      # D_ema moved a little from the pickle's, not restarted
