"""The training loop with the StyleGAN2 networks (smoke size) on the shared CIFAR-10 zip."""
import jax
import numpy as np
import pytest

from configs import cifar10
import train_helpers
from dgan_jax import steps, train


@pytest.fixture
def config(cifar10_zip):
  config = cifar10.get_config('smoke')
  config.data.path = str(cifar10_zip)
  config.data.max_images = 256
  config.model.mixed_precision = 'float32'
  train.setup_config(config, 1)
  return config


def run_steps(config, devices, num_steps):
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
  # Every phase at once: G main + path length, D main + R1.
  step_fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases(pl=True, r1=True))
  data = train_helpers.global_batches(config, mesh)
  for _ in range(num_steps):
    state, metrics = step_fn(state, next(data))
    jax.block_until_ready(state)
  return state, metrics


@pytest.mark.slow   # minutes of compilation on a 2-core CPU; the toy tests cover the same loop
def test_one_vs_eight_devices_all_phases(config):
  """Same parameters on 1 and 8 devices with R1, path length, style mixing and mbstd groups."""
  config.loss.pl_weight, config.loss.style_mixing_prob = 2.0, 0.9
  config.loss.r1_gamma = 1.0
  config.model.D.mbstd_group_size = 2
  one, _ = run_steps(config, jax.devices()[:1], 2)
  eight, metrics = run_steps(config, jax.devices()[:8], 2)
  for name in ('loss/G', 'loss/D', 'loss/G_reg', 'loss/D_reg', 'pl_penalty', 'r1_penalty'):
    assert np.isfinite(float(metrics[name])), name
  for tree in ('g_params', 'd_params', 'g_ema_params', 'g_buffers'):
    for a, b in zip(jax.tree.leaves(getattr(one, tree)), jax.tree.leaves(getattr(eight, tree))):
      np.testing.assert_allclose(a, b, atol=5e-5, rtol=5e-4, err_msg=tree)
  assert float(one.pl_mean) == pytest.approx(float(eight.pl_mean), rel=1e-4)
  assert float(one.pl_mean) > 0
  w_avg = jax.tree.leaves(one.g_buffers['mapping'])[0]
  assert np.abs(np.asarray(w_avg)).sum() > 0      # w_avg tracked during training


@pytest.mark.slow   # minutes of compilation on a 2-core CPU; the toy tests cover the same loop
def test_gradient_accumulation_gives_the_same_step(config):
  """`train.subs_per_pass` processes sub-batches in passes (with remat): same result as all at once."""
  config.loss.r1_gamma = 1.0
  full, _ = run_steps(config, jax.devices()[:2], 1)
  config.train.subs_per_pass = 1
  passes, _ = run_steps(config, jax.devices()[:2], 1)
  for a, b in zip(jax.tree.leaves(full.d_params), jax.tree.leaves(passes.d_params)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.slow   # minutes of compilation on a 2-core CPU; the toy tests cover the same loop
def test_image_run_end_to_end_and_resume(config, tmp_path):
  config.train.total_kimg = 16 * 6 / 1000
  full = train.train_and_evaluate(config, str(tmp_path / 'full'))
  for name in ('reals.png', 'fakes_step0000006.png', 'config.json', 'diffusion_trajectory.png'):
    assert (tmp_path / 'full' / name).exists(), name
  train.train_and_evaluate(config, str(tmp_path / 'split'), stop_after_steps=3)
  resumed = train.train_and_evaluate(config, str(tmp_path / 'split'))
  assert int(resumed.step) == 6 and int(resumed.images_seen) == 96
  for a, b in zip(jax.tree.leaves((full.g_params, full.d_params, full.g_buffers)),
                  jax.tree.leaves((resumed.g_params, resumed.d_params, resumed.g_buffers))):
    np.testing.assert_array_equal(a, b)


def test_resolution_mismatch_is_reported_before_compiling(cifar10_zip, tmp_path):
  config = cifar10.get_config('smoke')
  config.data.path = str(cifar10_zip)
  config.data.resolution = 64
  with pytest.raises(ValueError, match='resolution'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'checkpoints').exists()
