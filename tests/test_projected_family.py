"""The projected family (Diffusion-ProjectedGAN) in the training loop: its configs, its checks, a
run of the loop at a tiny width (feature-level diffusion, hinge loss, BatchNorm and spectral-norm
buffers, the frozen backbone), the controller moving T on feature maps; slow: 1 vs 8 devices and
exact resume."""
import json

import jax
import numpy as np
import pytest

from configs import cifar10_projected, lsun_bedroom256_projected, lsun_church256_projected
from configs import stl10_projected
import data_helpers
import train_helpers
from dgan_jax import config_checks, diffusion, errors, export, families, generate, run_dir
from dgan_jax import steps, train
from dgan_jax.models.projected import torch_names


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
  path = tmp_path_factory.mktemp('data') / 'rand32.zip'
  return data_helpers.write_dataset(path, data_helpers.random_images(32, 32))


def tiny_config(path, variant='smoke', devices=8):
  config = cifar10_projected.get_config(variant)
  config.data.path = str(path)
  config.diffusion.initial_p = 0.5      # 32 of 64 t_epl entries diffuse from the first step
  train.setup_config(config, devices)
  return config


def test_configs_follow_the_reference():
  config = cifar10_projected.get_config()
  assert config.model.family == 'projected' and config.model.projected.cfg == 'fastgan'
  assert (config.diffusion.target, stl10_projected.get_config().diffusion.target,
          lsun_church256_projected.get_config().diffusion.target,
          lsun_bedroom256_projected.get_config().diffusion.target) == (0.45, 0.6, 0.2, 0.2)
  assert (config.loss.kind, config.loss.r1_gamma, config.loss.pl_weight) == ('hinge', 0.0, 0.0)
  assert (config.optim.g_lr, config.optim.b1, config.optim.b2) == (0.0002, 0.0, 0.99)
  assert (config.train.batch_size, config.train.ema_kimg) == (64, 20.0)
  assert config.augment.kind == 'diffaug' and config.diffusion.t_per_channel
  assert (config.diffusion.t_min, config.diffusion.t_max, config.diffusion.noise_std) == (5, 500, 0.5)
  sg2 = cifar10_projected.get_config('stylegan2')
  assert sg2.model.projected.cfg == 'stylegan2' and sg2.optim.g_lr == 0.0025
  assert cifar10_projected.get_config('projected').diffusion.enabled is False
  assert cifar10_projected.get_config('small').model.projected.backbone == 'random'
  with pytest.raises(ValueError, match='variant'):
    cifar10_projected.get_config('lite,stylegan2')


def test_optimizers_rescale_d_only():
  """The reference's D_reg_interval 16 rescales D's Adam (lr x 16/17) although D has no
  regularizer; G has no interval. One Adam step from zero state moves a parameter by lr."""
  config = cifar10_projected.get_config()
  g_tx, d_tx = families.get(config).make_optimizers(config)
  params = {'w': np.ones(3, np.float32)}
  grads = {'w': np.full(3, 0.5, np.float32)}
  g_step = g_tx.update(grads, g_tx.init(params), params)[0]['w']
  d_step = d_tx.update(grads, d_tx.init(params), params)[0]['w']
  np.testing.assert_allclose(-g_step, 0.0002, rtol=1e-4)
  np.testing.assert_allclose(-d_step, 0.0002 * 16 / 17, rtol=1e-4)


def test_bad_settings_fail_before_compiling(tiny_zip, tmp_path):
  config = cifar10_projected.get_config('smoke')
  config.loss.r1_gamma = 1.0
  config.model.projected.d_pos = 'middle'
  with pytest.raises(ValueError) as e:
    config_checks.validate(config, 8)
  assert 'r1_gamma' in str(e.value) and 'd_pos' in str(e.value)
  config = cifar10_projected.get_config()        # pretrained backbone, no weight file here
  config.data.path = str(tiny_zip)
  config.train.batch_size = config.train.batch_gpu = 8
  config.model.projected.backbone_path = str(tmp_path / 'missing.pth')
  with pytest.raises(errors.MissingInputError, match='(?s)missing.pth.*backbone=random'):
    train.setup_config(config, 1)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _moved(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(_leaves(a), _leaves(b)))


def test_training_loop_at_a_tiny_width(tiny_zip, tmp_path):
  """Two steps of the loop on 8 devices (one compile), a checkpoint after each: finite hinge
  losses, G, D and their BatchNorm / spectral-norm buffers trained, the frozen backbone and mixers
  untouched, integer BatchNorm counters, the controller moved by the real patch logits' signs
  (r_d < target: p down twice), the projected t_epl rule, a sample grid."""
  config = tiny_config(tiny_zip)
  config.train.total_steps = 2
  train.train_and_evaluate(config, str(tmp_path))
  saved = run_dir.load_config(tmp_path)
  first = run_dir.restore_state(tmp_path, saved, 1)[1]
  state = run_dir.restore_state(tmp_path, saved, 2)[1]
  assert _moved(first.g_params, state.g_params) > 0 and _moved(first.d_params, state.d_params) > 0
  for name in ('batch_stats', 'spectral'):
    assert _moved(first.g_buffers[name], state.g_buffers[name]) > 0, name
    assert _moved(first.d_buffers[name], state.d_buffers[name]) > 0, name
  assert _moved(first.d_buffers['frozen'], state.d_buffers['frozen']) == 0
  counts = [np.asarray(x) for x in jax.tree.leaves(state.d_buffers['batch_stats'])
            if np.asarray(x).dtype.kind == 'i']
  assert counts and {int(x) for x in counts} == {2 * 3}   # 2 steps x 3 D calls (G, fake, real)
  step = config.train.batch_size * config.diffusion.ada_interval / (config.diffusion.ada_kimg * 1000)
  history = json.loads((tmp_path / 'diffusion_history.json').read_text())
  assert [row['step'] for row in history] == [1, 2]
  assert all(abs(row['r_d']) > 0 and row['r_d'] < config.diffusion.target for row in history)
  np.testing.assert_allclose(float(state.diffusion.p), 0.5 - 2 * step, atol=1e-6)
  start = diffusion.init_state(jax.random.key(0), config.diffusion, 8)
  assert int(state.diffusion.T) <= int(start.T)
  nonzero = (np.asarray(state.diffusion.t_epl) > 0).sum(axis=1)
  assert set(nonzero) == {min(round(64 * float(state.diffusion.p)), 48)}   # projected t_epl rule
  assert list(tmp_path.glob('fakes*.png'))
  # generate and export work on the run (FastGAN: no W space, interpolation in z)
  paths = generate.run(tmp_path, seeds='0-2', interp_steps=2)
  assert len(paths['seeds']) == 3 and paths['interpolation'].exists()
  nets = families.build_networks(saved)
  data = export.bundle(saved, state)
  assert list(data['G']) == [f'{row.torch}.{leaf}' for row in torch_names.generator_table(nets.G)
                             for leaf, _, _ in torch_names.LEAVES[row.kind]]
  assert 'feature_network.pretrained.layer0.0.weight' in data['D'] or any(
      k.startswith('feature_network.pretrained.') for k in data['D'])
  assert data['G_kwargs']['class_name'] == 'pg_modules.networks_fastgan.Generator'
  assert data['D_kwargs']['backbone_kwargs']['d_pos'] == 'first'
  back = torch_names.from_torch(data['D'], torch_names.discriminator_table(nets.D, backbone=True))
  assert _moved(back['params'], state.d_params) == 0


@pytest.mark.slow   # two compilations of the projected step: minutes on a 2-core CPU
def test_one_and_eight_devices_give_the_same_parameters(tiny_zip):
  """One step on 1 and on 8 devices: the same losses and scores (float32 summation order only),
  parameters within 2 lr. Adam's first step (b1 = 0) moves every element by about +-lr whatever
  the gradient's size, so elements whose gradient is rounding noise take either sign depending on
  the summation order (docs/families.md explains the same for SNGAN). At this tiny width with one
  sample per BatchNorm call those differences then grow: the second step's G loss differed by 3.6%
  (0.816 vs 0.788), which is why the comparison stops after one step."""
  def run(devices):
    config = tiny_config(tiny_zip, devices=len(devices))
    mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
    step_fn = train_helpers.train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
    data = train_helpers.global_batches(config, mesh)
    history = []
    for _ in range(1):
      state, metrics = step_fn(state, next(data))
      history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return jax.device_get(state), history, config
  eight, eight_metrics, config = run(jax.devices()[:8])
  one, one_metrics, _ = run(jax.devices()[:1])
  for i, (a, b) in enumerate(zip(one_metrics, eight_metrics)):
    for name in ('loss/G', 'loss/D', 'scores/real', 'scores/fake'):
      np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4,
                                 err_msg=f'step {i} {name}: 1 device {one_metrics}, 8 {eight_metrics}')
  bound = 2 * config.optim.d_lr
  for tree in ('g_params', 'd_params'):
    for a, b in zip(_leaves(getattr(one, tree)), _leaves(getattr(eight, tree))):
      np.testing.assert_allclose(a, b, atol=bound, rtol=0, err_msg=tree)
  for a, b in zip(_leaves(one.d_buffers['frozen']), _leaves(eight.d_buffers['frozen'])):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow   # three runs of the loop
def test_kill_and_resume_is_exact(tmp_path, tiny_zip):
  straight = train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'a', 4)
  train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'b', 2)
  resumed = train_helpers.run_loop(tiny_config(tiny_zip), tmp_path / 'b', 4)
  train_helpers.assert_states_equal(straight, resumed, ('g_params', 'd_params', 'g_buffers',
                                                        'd_buffers', 'diffusion', 'g_ema_params'))
