"""DCGAN / SNGAN families (families/small_gans.py) and their configs (configs/cifar10_dcgan.py,
cifar10_sngan.py): recipes, variants, config checks, the optimizers, SNGAN's n_dis schedule, and
training steps at a tiny width on 8 devices.

Compiling one training step of these networks (and their jitted init) costs 40-100 s on the shared
2-core CPU (measured with pytest --durations), so the default suite trains one configuration,
Diffusion-SNGAN through its n_dis schedule (hinge loss, spectral-norm buffers, the t-conditioned
D, G every 5th step); the other rows, device-count independence and the CLI run are `slow`."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import data_helpers
import train_helpers
from configs import cifar10_dcgan, cifar10_sngan, small_gans
from dgan_jax import errors, families, steps, train

CONFIGS = {'dcgan': cifar10_dcgan, 'sngan': cifar10_sngan}
PAPER_FID = {'dcgan': ('28.65', '24.67'), 'sngan': ('20.76', '17.23')}


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
  """64 random 8x8 images: every layer of the 32 px networks, on a 1x1 grid (G) and 8 px (D)."""
  path = tmp_path_factory.mktemp('data') / 'rand8.zip'
  return data_helpers.write_dataset(path, data_helpers.random_images(64, 8))


def tiny_config(family, diffusion, path):
  config = CONFIGS[family].get_config('diffusion,smoke' if diffusion else 'smoke')
  config.data.path, config.data.resolution, config.data.max_images = str(path), 8, 64
  train.setup_config(config, 8)
  return config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def max_change(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(leaves(a), leaves(b)))


# --- Configs --------------------------------------------------------------------------------------

@pytest.mark.parametrize('family', sorted(CONFIGS))
@pytest.mark.parametrize('variant', ['', 'diffusion', 'smoke', 'diffusion,smoke', 'small'])
def test_recipe_and_variants(family, variant):
  config = CONFIGS[family].get_config(variant)
  recipe = small_gans.RECIPES[family]
  assert config.model.family == family
  assert config.diffusion.enabled == ('diffusion' in variant)
  assert config.loss.kind == recipe['loss'] == ('hinge' if family == 'sngan' else 'non_saturating')
  assert config.train.n_dis == (5 if family == 'sngan' else 1)
  assert (config.optim.g_lr, config.optim.d_lr) == (2e-4, 2e-4)
  assert (config.optim.b1, config.optim.b2) == ((0.0, 0.9) if family == 'sngan' else (0.5, 0.999))
  assert config.loss.r1_gamma == 0 and config.loss.pl_weight == 0
  assert config.train.ema_kimg == 0     # G_ema = G
  assert steps.controller_interval(config) == (config.diffusion.ada_interval
                                               if 'diffusion' in variant else 0)
  nets = families.build_networks(config)
  _, g_buffers, d_params, d_buffers = jax.eval_shape(lambda: nets.init(jax.random.key(0), 2))
  assert ('t_embed' in d_params) == ('diffusion' in variant)   # t-less D for the baselines
  assert set(g_buffers) == set(d_buffers) == {'batch_stats'}


def test_unknown_or_conflicting_variants_are_named():
  for arg in ('diffusion,ada', 'small,smoke', 'diffusion,diffusion', 'stylegan2'):
    with pytest.raises(ValueError, match='comma-separated'):
      cifar10_dcgan.get_config(arg)


@pytest.mark.parametrize('family', sorted(CONFIGS))
def test_docstrings_give_commands_and_the_papers_numbers(family):
  doc = CONFIGS[family].__doc__
  for number in PAPER_FID[family]:
    assert number in doc
  assert f'--config=configs/cifar10_{family}.py:diffusion' in doc
  assert '../shared/data/cifar10/train.zip' in doc
  assert 'never released' in doc


def test_config_problems_are_named_before_any_work():
  config = cifar10_sngan.get_config('smoke')
  config.data.use_labels = True
  config.loss.pl_weight = 2.0
  config.data.resolution = 30
  config.model.width = 0.0
  config.model.t_embedding = 'raw'
  with pytest.raises(errors.UserError) as e:
    train.setup_config(config, 1)
  for text in ('data.use_labels=True', 'loss.pl_weight=2.0', 'data.resolution=30',
               'model.width=0.0', "model.t_embedding='raw'"):
    assert text in str(e.value)


@pytest.mark.parametrize('family', sorted(CONFIGS))
def test_adam_is_the_recipes_without_lazy_rescaling(family):
  """One update equals plain Adam with the config's lr and betas (StyleGAN2's families rescale lr
  and b2 by their reg intervals; here nothing regularizes). With R1 on, D's Adam is rescaled."""
  config = CONFIGS[family].get_config()
  params = {'w': jnp.linspace(-1.0, 1.0, 5)}
  grads = [{'w': jnp.arange(5.0) - 2.0}, {'w': jnp.ones(5) * 0.3}]

  def run(tx):
    state, p = tx.init(params), params
    for g in grads:
      updates, state = tx.update(g, state, p)
      p = optax.apply_updates(p, updates)
    return np.asarray(p['w'])
  o = config.optim
  expected = run(optax.adam(o.g_lr, b1=o.b1, b2=o.b2, eps=o.eps))
  g_tx, d_tx = train.make_optimizers(config)
  np.testing.assert_allclose(run(g_tx), expected, rtol=1e-6)
  np.testing.assert_allclose(run(d_tx), expected, rtol=1e-6)
  config.loss.r1_gamma, config.loss.r1_interval = 0.1, 16
  ratio = 16 / 17
  _, d_tx = train.make_optimizers(config)
  np.testing.assert_allclose(
      run(d_tx), run(optax.adam(o.d_lr * ratio, b1=o.b1, b2=o.b2 ** ratio, eps=o.eps)), rtol=1e-6)


def test_sngan_schedule_runs_g_every_fifth_step():
  """The phase schedule of the SNGAN config: D main every step, G main when step % 5 == 0."""
  config = cifar10_sngan.get_config()
  variants, select = steps.phase_schedule(config)
  assert variants == [steps.Phases(g=False, d=True), steps.Phases(g=True, d=True)]
  assert [select(s).g for s in range(11)] == [s % 5 == 0 for s in range(11)]
  assert all(select(s).d and not select(s).r1 and not select(s).pl for s in range(11))
  variants, _ = steps.phase_schedule(cifar10_dcgan.get_config())
  assert variants == [steps.Phases(g=True, d=True)]


# --- Training ------------------------------------------------------------------------------------

def run_family_steps(config, devices, num_steps):
  """`num_steps` steps through the family's compiled variants (the loop's schedule), with the
  controller updates; returns (first state, states after each step, metrics of each step)."""
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
  first = jax.device_get(state)
  train_step = families.get(config).make_steps(config, nets, mesh, g_tx, d_tx)
  every = steps.controller_interval(config)
  update = steps.make_controller_update(config, mesh) if every else None
  data = train_helpers.global_batches(config, mesh)
  states, metrics = [], []
  for i in range(num_steps):
    state, m = train_step(i, state, next(data))
    if update and (i + 1) % every == 0:
      state = update(state)
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return first, states, metrics


@pytest.mark.slow   # 80-100 s each on the shared 2-core CPU (init + step compilation)
@pytest.mark.parametrize('diffusion', [False, True], ids=['baseline', 'diffusion'])
def test_dcgan_trains_two_steps_on_eight_devices(diffusion, tiny_zip):
  """G and D phases each step: finite losses, G and D moved, BatchNorm statistics updated; with
  diffusion the controller ran and D has its t embedding."""
  config = tiny_config('dcgan', diffusion, tiny_zip)
  first, states, metrics = run_family_steps(config, jax.devices()[:8], 2)
  last = states[-1]
  for m in metrics:
    assert np.isfinite(float(m['loss/G'])) and np.isfinite(float(m['loss/D']))
  assert max_change(first.d_params, last.d_params) > 0
  assert max_change(first.g_params, last.g_params) > 0
  assert max_change(first.g_buffers, last.g_buffers) > 0
  assert max_change(first.d_buffers, last.d_buffers) > 0
  assert ('t_embed' in last.d_params) == diffusion
  for a, b in zip(leaves(last.g_params), leaves(last.g_ema_params)):   # ema_kimg = 0: G_ema = G
    np.testing.assert_array_equal(a, b)
  assert int(last.diffusion.num_updates) == (1 if diffusion else 0)   # ada_interval 2


def test_sngan_updates_g_every_fifth_step_and_d_every_step(tiny_zip):
  """Diffusion-SNGAN, n_dis 5, hinge: over 6 steps G changes at steps 0 and 5 only, D and its
  spectral-norm vectors at every step; losses finite."""
  config = tiny_config('sngan', True, tiny_zip)
  first, states, metrics = run_family_steps(config, jax.devices()[:8], 6)
  before = [first] + states[:-1]
  for i, (a, b) in enumerate(zip(before, states)):
    g_moved = max_change(a.g_params, b.g_params) > 0
    assert g_moved == (i % 5 == 0), f'step {i}: G moved={g_moved}'
    assert max_change(a.d_params, b.d_params) > 0, f'step {i}: D did not move'
    assert max_change(a.d_buffers, b.d_buffers) > 0, f'step {i}: spectral-norm vectors'
    assert ('loss/G' in metrics[i]) == (i % 5 == 0)
    assert np.isfinite(float(metrics[i]['loss/D']))
  assert 't_embed' in states[-1].d_params
  assert np.isfinite(float(metrics[0]['loss/G'])) and np.isfinite(float(metrics[5]['loss/G']))


@pytest.mark.slow   # 40 s on the shared 2-core CPU
def test_sngan_baseline_trains_two_steps_on_eight_devices(tiny_zip):
  """The t-less SNGAN with n_dis 1 (both phases in one compiled step): finite, both moved."""
  config = tiny_config('sngan', False, tiny_zip)
  config.train.n_dis = 1
  first, states, metrics = run_family_steps(config, jax.devices()[:8], 2)
  assert all(np.isfinite(float(m['loss/G'])) and np.isfinite(float(m['loss/D'])) for m in metrics)
  assert max_change(first.d_params, states[-1].d_params) > 0
  assert max_change(first.g_params, states[-1].g_params) > 0
  assert 't_embed' not in states[-1].d_params


# Biases right before a BatchNorm (kept, as in the original code) have no effect on any output, so
# their gradients are rounding noise, which Adam scales to +-lr steps: they (and, through them, the
# running means) differ between device counts by up to ~2 lr per step. Layer names per family.
BN_FED = {('dcgan', 'g_params'): {'l0', 'dc1', 'dc2', 'dc3'},
          ('dcgan', 'd_params'): {'c0_1', 'c1_0', 'c1_1', 'c2_0', 'c2_1', 'c3_0'},
          ('sngan', 'g_params'): {'l1', 'c1', 'c2', 'c_sc'}}


def bn_fed_bias(family, tree, path):
  names = [getattr(k, 'key', None) for k in path]
  return names[-1] == 'bias' and names[-2] in BN_FED.get((family, tree), ())


@pytest.fixture(scope='module')
def zip16(tmp_path_factory):
  """16 px: no BatchNorm over a single pixel of two samples (a degenerate case at 8 px)."""
  path = tmp_path_factory.mktemp('data16') / 'rand16.zip'
  return data_helpers.write_dataset(path, data_helpers.random_images(64, 16))


@pytest.mark.slow   # four compilations of the step: 1.5-4 minutes each on the shared 2-core CPU
@pytest.mark.parametrize('family', sorted(CONFIGS))
def test_one_and_eight_devices_give_the_same_run(family, zip16):
  """Per-sub-batch BatchNorm / spectral norm and draws: the device count does not change a run.
  Losses and scores of both steps agree to float rounding; parameters to well under one Adam step
  (Adam turns rounding differences in small gradients into visible ones), the noise-driven biases
  before BatchNorm (BN_FED) to a few steps."""
  config = CONFIGS[family].get_config('diffusion,smoke')
  config.data.path, config.data.resolution, config.data.max_images = str(zip16), 16, 64
  config.train.batch_size, config.train.batch_gpu, config.train.n_dis = 32, 4, 1
  train.setup_config(config, 8)
  _, eight, metrics8 = run_family_steps(config, jax.devices()[:8], 2)
  _, one, metrics1 = run_family_steps(config, jax.devices()[:1], 2)
  for m1, m8 in zip(metrics1, metrics8):
    for key in ('loss/G', 'loss/D', 'scores/real', 'scores/fake', 'scores/fake_G'):
      assert float(m1[key]) == pytest.approx(float(m8[key]), rel=1e-5, abs=1e-6), key
  lr = config.optim.g_lr
  for tree in ('g_params', 'd_params', 'g_buffers', 'd_buffers'):
    pairs = zip(jax.tree_util.tree_leaves_with_path(getattr(one[-1], tree)),
                leaves(getattr(eight[-1], tree)))
    for (path, a), b in pairs:
      name = f'{tree}{jax.tree_util.keystr(path)}'
      if bn_fed_bias(family, tree, path):
        np.testing.assert_allclose(a, b, atol=4 * lr, err_msg=name)
      elif tree.endswith('buffers') and getattr(path[-1], 'key', '') == 'mean':
        # 0.1 (momentum 0.9) of those biases' differences, two updates per step; SNGAN's residual
        # sums add two of them (2.1 lr measured at 16 px).
        np.testing.assert_allclose(a, b, atol=4 * lr, err_msg=name)
      elif tree.endswith('params'):
        np.testing.assert_allclose(a, b, atol=0.75 * lr, err_msg=name)
      else:
        np.testing.assert_allclose(a, b, atol=5e-5, rtol=5e-4, err_msg=name)
  assert float(one[-1].diffusion.p) == float(eight[-1].diffusion.p)


@pytest.mark.slow   # 100 s on the shared 2-core CPU (a subprocess compiles everything again)
def test_cli_trains_the_smoke_config(tmp_path, tiny_zip):
  """`python -m dgan_jax.main --config=configs/cifar10_dcgan.py:smoke` end to end: a checkpoint,
  sample grids, the diffusion trajectory absent (baseline)."""
  workdir = tmp_path / 'run'
  cmd = [sys.executable, '-m', 'dgan_jax.main', '--config=configs/cifar10_dcgan.py:smoke',
         f'--workdir={workdir}', f'--config.data.path={tiny_zip}', '--config.data.resolution=8',
         '--config.train.batch_gpu=16']
  result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'step 2/2' in result.stdout
  assert any((workdir / 'checkpoints').glob('[0-9]*'))
  assert not (workdir / 'diffusion_trajectory.png').exists()
