"""The training loop on the 25-Gaussians toy: sharding, controller replication, resume, outputs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy25
import train_helpers
from dgan_jax import checkpoint, grids, steps, toy, train


def smoke_config(**train_overrides):
  config = toy25.get_config('smoke')
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


def run_steps(config, devices, num_steps):
  """Runs the real step functions on a mesh of `devices`, as the loop does."""
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
  step_fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  r1_step = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases(r1=True))
  update = steps.make_controller_update(config, mesh)
  data = train_helpers.global_batches(config, mesh)
  for i in range(num_steps):
    state, metrics = (r1_step if i % 2 == 0 else step_fn)(state, next(data))
    if (i + 1) % config.diffusion.ada_interval == 0:
      state = update(state)
    jax.block_until_ready(state)   # jax-notes: don't queue many collective steps on a 2-core CPU.
  return state, metrics


def test_one_vs_eight_devices_same_result():
  """Catches a wrong gradient scale or device-dependent randomness (R1 on every other step)."""
  config = smoke_config(batch_size=64, batch_gpu=8)
  config.loss.r1_gamma, config.loss.r1_interval = 0.1, 2
  config.optim.g_lr = config.optim.d_lr = 1e-2   # Large steps make a scale error visible.
  one, _ = run_steps(config, jax.devices()[:1], 8)
  eight, metrics = run_steps(config, jax.devices()[:8], 8)
  for a, b in zip(jax.tree.leaves(one.g_params) + jax.tree.leaves(one.d_params),
                  jax.tree.leaves(eight.g_params) + jax.tree.leaves(eight.d_params)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)
  np.testing.assert_array_equal(one.diffusion.t_epl, eight.diffusion.t_epl)
  assert float(one.diffusion.p) == float(eight.diffusion.p)
  assert 'r1_penalty' not in metrics and 'loss/D' in metrics


def test_controller_identical_on_all_devices():
  config = smoke_config(batch_size=64, batch_gpu=8)
  config.diffusion.target = 0.0       # r_d > 0 soon: p and T move.
  state, _ = run_steps(config, jax.devices()[:8], 12)
  assert int(state.diffusion.num_updates) == 3
  for leaf in jax.tree.leaves(state.diffusion):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    assert len(shards) == 8
    for s in shards[1:]:
      np.testing.assert_array_equal(s, shards[0])
  assert float(state.diffusion.p) > 0 and int(state.diffusion.T) > config.diffusion.t_min
  assert state.diffusion.t_epl.shape == (8, 64)   # one pool per batch_gpu sub-batch


def test_checkpoint_round_trip_restores_controller(tmp_path):
  config = smoke_config(batch_size=64, batch_gpu=8)
  config.diffusion.target = 0.0
  state, _ = run_steps(config, jax.devices()[:8], 8)
  ckpt = checkpoint.Checkpointer(tmp_path, keep=2)
  ckpt.save(8, state, config)
  ckpt.wait()
  replicated = jax.sharding.NamedSharding(steps.make_mesh(), jax.sharding.PartitionSpec())
  restored = checkpoint.Checkpointer(tmp_path).restore(checkpoint.abstract_like(state, replicated))
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(a, b)
  assert float(restored.diffusion.p) > 0
  assert ckpt.restore_config()['diffusion']['target'] == 0.0


def test_interrupted_run_resumes_exactly(tmp_path):
  config = smoke_config(batch_size=64, batch_gpu=8, total_kimg=64 * 12 / 1000)
  config.train.checkpoint_every_kimg = 0.0
  full = train.train_and_evaluate(config, str(tmp_path / 'full'))
  part = train.train_and_evaluate(config, str(tmp_path / 'split'), stop_after_steps=5)
  assert int(part.step) == 5 and not (tmp_path / 'split' / 'samples.npy').exists()
  resumed = train.train_and_evaluate(config, str(tmp_path / 'split'))
  assert int(resumed.step) == 12
  for a, b in zip(jax.tree.leaves(full.g_params) + jax.tree.leaves(full.d_params),
                  jax.tree.leaves(resumed.g_params) + jax.tree.leaves(resumed.d_params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(full.diffusion.t_epl, resumed.diffusion.t_epl)


def test_toy_end_to_end_outputs(tmp_path):
  config = smoke_config(batch_size=64, batch_gpu=8)
  state = train.train_and_evaluate(config, str(tmp_path))
  samples = np.load(tmp_path / 'samples.npy')
  assert samples.shape == (10_000, 2) and samples.dtype == np.float32
  for name in ('toy25.png', 'diffusion_trajectory.png', 'config.json', 'results.json'):
    assert (tmp_path / name).stat().st_size > 0, name
  assert list(tmp_path.glob('events.out.tfevents.*'))
  assert json.loads((tmp_path / 'config.json').read_text())['diffusion']['target'] == 0.6
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['final_T'] == int(state.diffusion.T)
  assert int(state.step) == train.total_steps(config)


@pytest.mark.parametrize('section,field,value,message', [
    ('diffusion', 't_min', 2000, 'larger than diffusion.t_max'),
    ('diffusion', 'beta_schedule', 'lin', 'is unknown'),
    ('diffusion', 'target', 2.0, 'outside [0, 1]'),
    ('diffusion', 'noise_std', -1.0, 'is negative'),
    ('train', 'batch_gpu', 16, 'sub-batches of train.batch_gpu=16'),
    ('train', 'batch_gpu', 48, 'positive multiple of train.batch_gpu=48'),
    ('model', 't_embedding', 'learned', "t_embedding='learned' is unknown"),
    ('model', 'family', 'biggan', "model.family='biggan' is unknown"),
    ('loss', 'kind', 'wasserstein', "loss.kind='wasserstein' is unknown"),
    ('train', 'n_dis', 0, 'train.n_dis=0 must be an integer >= 1'),
])
def test_bad_config_fails_before_compiling(tmp_path, section, field, value, message):
  config = smoke_config(batch_size=64, batch_gpu=8)
  config[section][field] = value
  with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()   # Nothing written, nothing compiled.


@pytest.mark.parametrize('kind,width', [('scaled', 1), ('sinusoidal', 16)])
def test_toy_discriminator_t_embedding(kind, width):
  """The toy D reads t through its t_embedding; t = 1 and t = 2 give different logits."""
  d = toy.ToyDiscriminator(width=8, depth=1, t_embedding=kind)
  x = jnp.ones((2, 2))
  params = d.init(jax.random.key(0), x, None, jnp.array([1, 2]))
  assert params['params']['net']['fc0']['kernel'].shape == (2 + width, 8)
  logits = d.apply(params, x, None, jnp.array([1, 2]))
  assert abs(float(logits[0, 0] - logits[1, 0])) > 1e-6


def test_total_steps_overrides_total_kimg_and_grid_names(tmp_path, capsys):
  config = smoke_config(batch_size=64, batch_gpu=8)
  config.train.total_steps = 3
  config.train.log_every_steps = 1
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 3 == train.total_steps(config)
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith('step ')]
  assert 'compiling' in lines[0] and 'ETA -' in lines[0]     # the first step includes compiling
  assert 'ETA 0m' in lines[-1] and ('steps/s' in lines[-1] or 's/step' in lines[-1])
  grid = grids.SampleGrid.__new__(grids.SampleGrid)
  grid.batch_size, grid.by_kimg = 16, False
  assert grid.file_name(6) == 'fakes_step0000006.png'
  grid.batch_size, grid.by_kimg = 64, True
  assert grid.file_name(32) == 'fakes000002.png'


def test_scalar_log_lines_only_with_verbose_logs(tmp_path, caplog):
  """The console gets clu's per-scalar log lines only with train.verbose_logs (TensorBoard always)."""
  config = smoke_config()
  for verbose in (False, True):
    config.train.verbose_logs = verbose
    caplog.clear()
    with caplog.at_level('INFO'):
      writer = train.make_writer(tmp_path / str(verbose), config, is_main=True)
      writer.write_scalars(7, {'loss/G_probe': 0.25})
      writer.flush()
    assert ('loss/G_probe' in caplog.text) == verbose
    assert list((tmp_path / str(verbose)).glob('events.out.tfevents.*'))


def test_mode_coverage_metric():
  rng = np.random.default_rng(0)
  perfect = toy.sample_data(rng, 10_000)
  cov = toy.mode_coverage(perfect)
  assert cov['modes_covered'] == 25 and cov['high_quality_fraction'] > 0.98
  collapsed = toy.CENTRES[[0, 6]][rng.integers(0, 2, 10_000)]
  cov = toy.mode_coverage(collapsed)
  assert cov['modes_covered'] == 2 and cov['high_quality_fraction'] == 1.0


def test_toy_data_is_step_deterministic():
  a = list(zip(range(3), toy.data_batches(0, 8)))[2][1]['image']
  halves = [next(toy.data_batches(0, 8, 2, i, 2))['image'] for i in range(2)]
  b = next(toy.data_batches(0, 8, start_step=2))['image']
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.concatenate(halves), a)
