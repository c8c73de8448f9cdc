"""The paper's Table 1 CIFAR-10 rows (configs/cifar10.py variants): their networks and settings,
a few training steps of each at a tiny width, the ADA probability in the loop, device-count
independence and resume with augmentation."""
import jax
import numpy as np
import pytest

from configs import cifar10
import data_helpers
import train_helpers
from dgan_jax import checkpoint, families, steps, train

ROWS = sorted(cifar10.ROWS)
# The reference's cifar D with t (Diffusion-StyleGAN2) and stylegan2-ada's (t_dim = 0), recorded
# from the reference in tests/fixtures/stylegan2_reference.npz (test_models_reference_fixture.py).
D_PARAMS = {True: 23_085_056, False: 20_720_641}


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
  """64 random 8x8 images: the smallest StyleGAN2 (blocks 8 and 4) compiles in seconds."""
  path = tmp_path_factory.mktemp('data') / 'rand8.zip'
  return data_helpers.write_dataset(path, data_helpers.random_images(64, 8))


def tiny_config(row, path):
  config = cifar10.get_config(f'{row},smoke')
  config.data.path, config.data.resolution, config.data.max_images = str(path), 8, 64
  config.model.mixed_precision = 'float32'
  train.setup_config(config, 1)
  return config


def run_steps(config, devices, num_steps, ctrl_every=0):
  """`num_steps` steps of G and D phases, with a controller update every `ctrl_every` steps when
  the config adapts something (as the loop does)."""
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, devices)
  step_fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  adapts = ctrl_every and steps.controller_interval(config)
  update = steps.make_controller_update(config, mesh) if adapts else None
  data = train_helpers.global_batches(config, mesh)
  for i in range(num_steps):
    state, metrics = step_fn(state, next(data))
    if update and (i + 1) % ctrl_every == 0:
      state = update(state)
  return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize('row', ROWS)
def test_row_settings_and_discriminator_size(row):
  """Each row's diffusion / augmentation, and its full-width D parameter count (the reference's)."""
  enabled, kind = cifar10.ROWS[row]
  config = cifar10.get_config(row)
  assert (config.diffusion.enabled, config.augment.kind) == (enabled, kind)
  assert steps.controller_interval(config) == (4 if enabled or kind == 'ada' else 0)
  nets = families.build_networks(config)
  _, _, d_params, _ = jax.eval_shape(lambda: nets.init(jax.random.key(0), 2))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(d_params)) == D_PARAMS[enabled]


def test_unknown_or_conflicting_variants_are_named():
  for arg in ('stylegan3', 'stylegan2,diffusion_ada', 'small,smoke'):
    with pytest.raises(ValueError, match='comma-separated'):
      cifar10.get_config(arg)


# The default row (Diffusion-StyleGAN2, `cifar10.py:smoke`) trains in other default tests
# (test_evaluation); its settings and D size are checked above. The diffusion + augmentation rows
# combine pieces the default suite trains separately (each augmentation without diffusion here,
# diffusion in test_evaluation); they train under -m slow.
@pytest.mark.parametrize('row', [
    pytest.param(row, marks=pytest.mark.slow) if row.startswith('diffusion_') else row
    for row in ROWS if row != 'diffusion'])
def test_row_trains_a_few_steps(row, tiny_zip):
  """Two steps (G and D phases) at a tiny width: finite losses, D moved; with ADA the augmentation
  probability is where its rule puts it after a controller update."""
  config = tiny_config(row, tiny_zip)
  enabled, kind = cifar10.ROWS[row]
  if enabled:
    config.diffusion.initial_p = 0.5          # ADA then runs at the cap, 0.25
  first = train_helpers.start(config, jax.devices()[:8])[-1]
  state, metrics = run_steps(config, jax.devices()[:8], 2, ctrl_every=2)
  assert np.isfinite(float(metrics['loss/G'])) and np.isfinite(float(metrics['loss/D']))
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(first.d_params), jax.tree.leaves(state.d_params))]
  assert max(moved) > 0
  assert ('mapping' in state.d_params) == enabled
  p_aug = float(state.augment.p)
  if kind == 'ada' and enabled:
    assert p_aug == pytest.approx(min(float(state.diffusion.p), config.augment.ada_maxp))
    assert p_aug == pytest.approx(0.25)
  elif kind == 'ada':
    # Own controller after one update: one move of batch * interval / (ada_kimg * 1000) up or down
    # (clipped at 0), in the direction of sign(r - target).
    step = config.train.batch_size * config.augment.ada_interval / (config.augment.ada_kimg * 1000)
    r = float(state.augment.r_last)
    assert p_aug == pytest.approx(step if r > config.augment.ada_target else 0.0, abs=1e-7)
    assert int(state.augment.num_updates) == 1
  else:
    assert p_aug == 0.0


@pytest.mark.slow   # two compilations of the ADA + diffusion step: minutes on a 2-core CPU
def test_ada_with_diffusion_is_the_same_on_one_and_eight_devices(tiny_zip):
  """The augmentation draws come from the sub-batch keys, not from the device count."""
  config = tiny_config('diffusion_ada', tiny_zip)
  config.diffusion.initial_p = 0.5
  eight, _ = run_steps(config, jax.devices()[:8], 2, ctrl_every=2)
  one, _ = run_steps(config, jax.devices()[:1], 2, ctrl_every=2)
  assert float(one.augment.p) == float(eight.augment.p) == pytest.approx(0.25)
  for tree in ('g_params', 'd_params'):
    for a, b in zip(jax.tree.leaves(getattr(one, tree)), jax.tree.leaves(getattr(eight, tree))):
      np.testing.assert_allclose(a, b, atol=5e-5, rtol=5e-4, err_msg=tree)


def test_augment_state_is_checkpointed_and_restored(tmp_path, tiny_zip):
  """A resumed run starts from the saved ADA level and its running statistic."""
  config = tiny_config('stylegan2_ada', tiny_zip)
  _, nets, g_tx, d_tx, state = train_helpers.start(config, jax.devices()[:1])
  aug = state.augment.replace(p_ticks=np.int32(2048), p=np.float32(2048 / 500_000),
                              sign_sum=np.float32(7.0), sign_count=np.float32(16.0),
                              num_updates=np.int32(3))
  state = state.replace(augment=aug, step=np.int32(12))
  ckpt = checkpoint.Checkpointer(tmp_path)
  ckpt.save(12, state, config)
  ckpt.wait()
  restored = ckpt.restore(jax.eval_shape(lambda: state))
  ckpt.close()
  for name in ('p_ticks', 'p', 'sign_sum', 'sign_count', 'num_updates'):
    assert np.asarray(getattr(restored.augment, name)) == np.asarray(getattr(aug, name)), name


@pytest.mark.slow   # three runs of the loop: minutes of compilation on a 2-core CPU
def test_resumed_run_continues_with_the_same_p(tmp_path, tiny_zip):
  """4 steps in one run equal 2 steps, a restart, and 2 more: same ADA p and parameters."""
  def loop(workdir, total_steps):
    config = tiny_config('stylegan2_ada', tiny_zip)
    config.train.total_steps = total_steps
    config.train.checkpoint_every_kimg = 0.032
    train.train_and_evaluate(config, str(workdir))
    from dgan_jax import run_dir   # pylint: disable=import-outside-toplevel
    return run_dir.restore_state(workdir, run_dir.load_config(workdir))[1]
  straight = loop(tmp_path / 'a', 4)
  loop(tmp_path / 'b', 2)
  resumed = loop(tmp_path / 'b', 4)
  assert int(resumed.augment.num_updates) == int(straight.augment.num_updates) == 2
  assert float(resumed.augment.p) == float(straight.augment.p)
  for a, b in zip(jax.tree.leaves(straight.d_params), jax.tree.leaves(resumed.d_params)):
    np.testing.assert_allclose(a, b, atol=1e-6)
