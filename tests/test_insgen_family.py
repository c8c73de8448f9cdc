"""The InsGen family in the training step: contrastive heads, D_ema and queues as train state,
the same on 1 and 8 devices, exact resume (queues included), its configs."""
import jax
import numpy as np
import pytest

from configs import afhq512_insgen, cifar10_insgen, ffhq1024_insgen
import data_helpers
import train_helpers
from dgan_jax import run_dir, steps, train
from dgan_jax.families import insgen

QUEUE = 24   # smaller than two global batches of keys (16 each): the ring wraps in 2 steps


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
  path = tmp_path_factory.mktemp('data') / 'rand8.zip'
  return data_helpers.write_dataset(path, data_helpers.random_images(64, 8))


def tiny_config(path, variant='smoke'):
  config = ffhq1024_insgen.get_config(variant)
  config.data.path, config.data.resolution = str(path), 8
  config.model.mixed_precision = 'float32'
  config.insgen.real_queue_size = config.insgen.fake_queue_size = QUEUE
  config.diffusion.initial_p = 0.3
  train.setup_config(config, 1)
  return config


def run_steps(config, devices, num_steps):
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
  step_fn = train_helpers.train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  data = train_helpers.global_batches(config, mesh)
  for _ in range(num_steps):
    state, metrics = step_fn(state, next(data))
  return jax.device_get(state), jax.device_get(metrics)


def test_configs_and_variants():
  config = ffhq1024_insgen.get_config('n2k')
  assert config.model.family == 'insgen' and config.data.max_images == 2000
  assert (config.diffusion.t_max, config.diffusion.ts_dist) == (500, 'uniform')
  assert (config.augment.kind, config.augment.ada_maxp) == ('ada', 1.0)   # p = diffusion level
  assert ffhq1024_insgen.get_config('n200,insgen').diffusion.enabled is False
  assert afhq512_insgen.get_config('diffusion').insgen.enabled is False
  assert afhq512_insgen.get_config().data.resolution == 512
  with pytest.raises(ValueError, match='subset'):
    ffhq1024_insgen.get_config('n200,n500')


def test_cifar10_study_config_is_the_small_stylegan2_on_a_subset():
  config = cifar10_insgen.get_config('insgen,n1k,small')
  assert (config.model.family, config.data.max_images, config.data.xflip) == ('insgen', 1000, True)
  assert config.diffusion.enabled is False and config.insgen.enabled is True
  assert (config.model.G.channel_max, config.train.batch_size) == (32, 32)   # cifar10's :small
  assert cifar10_insgen.get_config('diffusion').insgen.enabled is False
  assert cifar10_insgen.get_config().model.G.channel_max == 512            # full cifar width
  with pytest.raises(ValueError, match='subset'):
    cifar10_insgen.get_config('n1k,n5k')


def test_default_queue_is_five_percent_of_the_data_doubled_by_flips(tiny_zip):
  config = ffhq1024_insgen.get_config('smoke')
  config.data.path, config.data.resolution = str(tiny_zip), 8
  train.setup_config(config, 1)
  assert config.insgen.real_queue_size == config.insgen.fake_queue_size == 2 * int(0.05 * 64)
  assert insgen.default_queue_size(1000, xflip=False) == 50


def test_insgen_step(tiny_zip):
  """Two steps on 8 devices: finite losses with both contrastive terms, heads trained, queues
  filled with the whole global batch of keys, D_ema moved."""
  config = tiny_config(tiny_zip)
  first = train_helpers.start(config, jax.devices()[:1])[-1]
  eight, metrics = run_steps(config, jax.devices()[:8], 2)
  for name in ('loss/G', 'loss/D', 'insgen/D_cl_real', 'insgen/D_cl_fake', 'insgen/G_cl_on_g'):
    assert np.isfinite(float(metrics[name])), name
  heads = eight.extra['heads']
  for name in insgen.HEADS:
    assert int(heads[name].ptr) == (2 * config.train.batch_size) % QUEUE
    norms = np.linalg.norm(np.asarray(heads[name].queue), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)     # every slot holds a normalised key
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
        jax.tree.leaves(first.extra['heads'][name].params), jax.tree.leaves(heads[name].params))]
    assert max(moved) > 0, name
  ema_gap = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
      jax.tree.leaves(eight.extra['d_ema']), jax.tree.leaves(eight.d_params))]
  assert max(ema_gap) > 0


@pytest.mark.slow   # two compilations of the InsGen step: minutes on a 2-core CPU
def test_one_and_eight_devices_give_the_same_parameters_and_queues(tiny_zip):
  config = tiny_config(tiny_zip)
  eight, _ = run_steps(config, jax.devices()[:8], 2)
  one, _ = run_steps(config, jax.devices()[:1], 2)
  for tree in ('g_params', 'd_params', 'extra'):
    for a, b in zip(jax.tree.leaves(getattr(one, tree)), jax.tree.leaves(getattr(eight, tree))):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=5e-5, rtol=5e-4,
                                 err_msg=tree)


@pytest.mark.slow   # three runs of the loop: minutes of compilation on a 2-core CPU
def test_kill_and_resume_is_exact_with_queues(tmp_path, tiny_zip):
  straight = train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'a', 4)
  train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'b', 2)
  resumed = train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'b', 4)
  train_helpers.assert_states_equal(straight, resumed,
                                    ('g_params', 'd_params', 'extra', 'augment', 'diffusion'))
