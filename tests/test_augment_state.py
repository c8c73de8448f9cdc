"""The augmentation probability's controller, the kind dispatcher and the augment config."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import base
from dgan_jax import augment, diffusion
from dgan_jax.augment import ada, diffaug, state
from tests import augment_reference as ar


def _cfg(**overrides):
  cfg = base.get_augment_config()
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def reference_ada_trajectory(r_sequence, batch, interval, kimg, target, p0=0.0):
  """The training loop's rule in float64: p <- clip(p + sign(r - target) * batch * interval /
  (kimg * 1000), 0, 1), one update per statistic (Diffusion-GAN's insgen training_loop.py)."""
  p, out = p0, []
  for r in r_sequence:
    adjust = np.sign(r - target) * (batch * interval) / (kimg * 1000)
    p = float(np.clip(p + adjust, 0.0, 1.0))
    out.append(p)
  return np.asarray(out)


@pytest.mark.parametrize('batch,interval,kimg,target', [(64, 4, 500.0, 0.6), (32, 2, 100.0, 0.5)])
def test_own_controller_follows_the_reference_rule(batch, interval, kimg, target):
  rng = np.random.default_rng(0)
  steps_to_one = int(np.ceil(kimg * 1000 / (batch * interval)))
  # The statistics as the reference's float64 collector has them: means of +-1 signs (k / 256 for
  # 256 samples), and exactly the target (sign 0: no move).
  r = np.concatenate([np.full(steps_to_one + 50, 0.9),          # up to the cap 1
                      np.full(2 * steps_to_one + 50, 0.1),      # down to the floor 0
                      np.full(10, target),
                      rng.integers(0, 257, 500) / 256])
  cfg = _cfg(ada_interval=interval, ada_kimg=kimg, ada_target=target)
  ours = state.controller_trajectory(cfg, r.astype(np.float32), batch_size=batch)
  expected = reference_ada_trajectory(r, batch, interval, kimg, target)
  np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7)
  assert ours.max() == 1.0 and ours[steps_to_one + 50:].min() == 0.0


def test_accumulate_then_update_uses_the_mean_sign():
  cfg = _cfg()
  s = state.init_state(cfg)
  s = state.accumulate(s, jnp.float32(60.0), jnp.float32(64.0))     # r = 0.9375 > 0.6: up
  s = state.accumulate(s, jnp.float32(-40.0), jnp.float32(64.0))    # r = 20 / 128 < 0.6: down
  s = jax.jit(lambda s: state.update(s, cfg, 64))(s)
  assert float(s.r_last) == pytest.approx(20 / 128)
  assert float(s.p) == 0.0 and int(s.num_updates) == 1                  # clipped at 0
  assert float(s.sign_sum) == 0.0 and float(s.sign_count) == 0.0
  s = state.update(state.accumulate(s, jnp.float32(64.0), jnp.float32(64.0)), cfg, 64)
  assert float(s.p) == pytest.approx(64 * 4 / 500_000)
  assert float(state.update(s, cfg, 64).p) == float(s.p)               # no statistic: no move


def test_fixed_p_when_not_adaptive():
  cfg = _cfg(adaptive=False, initial_p=0.3)
  np.testing.assert_allclose(state.controller_trajectory(cfg, [1.0, 1.0, 0.0]), 0.3, atol=1e-7)


def test_with_diffusion_p_is_the_capped_diffusion_level():
  """ADA p = min(diffusion p, ada_maxp) after each diffusion update (reference Diffusion.update_T)."""
  dcfg = base.get_diffusion_config()
  r_d = np.concatenate([np.full(400, 0.9), np.full(300, 0.1)])
  diffusion_p, _ = diffusion.controller_trajectory(dcfg, r_d, batch_size=64)
  for maxp in (0.25, 0.05, 1.0):
    cfg = _cfg(ada_maxp=maxp)
    s = state.init_state(cfg)
    ours = []
    for p in diffusion_p:
      s = state.follow_diffusion(s, jnp.float32(p), cfg)
      ours.append(float(s.p))
    np.testing.assert_allclose(ours, np.minimum(diffusion_p.astype(np.float64), maxp), atol=1e-7)
  assert diffusion_p.max() > 0.25    # the cap was reached


def test_state_is_a_pytree_of_scalars():
  s = state.init_state(_cfg(initial_p=0.125))
  leaves = jax.tree_util.tree_leaves(s)
  assert len(leaves) == 6 and all(leaf.shape == () for leaf in leaves)
  assert s.p.dtype == jnp.float32 and s.p_ticks.dtype == jnp.int32 and float(s.p) == 0.125


def test_augment_images_dispatches_on_kind():
  images = jnp.asarray(ar.smooth_images((2, 16, 16, 3), seed=1))
  key = jax.random.key(3)
  assert augment.augment_images(key, images, 0.5, _cfg(kind='none')) is images
  np.testing.assert_array_equal(augment.augment_images(key, images, 0.5, _cfg(kind='ada', spec='bgc')),
                                ada.augment(key, images, 0.5, 'bgc'))
  np.testing.assert_array_equal(augment.augment_images(key, images, 0.5, _cfg(kind='diffaug')),
                                diffaug.augment(key, images))
  with pytest.raises(ValueError, match='augment.kind'):
    augment.augment_images(key, images, 0.5, _cfg(kind='diff'))


def test_augment_images_strengths_come_from_the_config():
  cfg = _cfg(kind='ada', spec='color')
  cfg.strengths.brightness_std = 0.0
  cfg.strengths.contrast_std = 0.0
  cfg.strengths.saturation_std = 0.0
  cfg.strengths.hue_max = 0.0
  images = jnp.asarray(ar.smooth_images((64, 8, 8, 3), seed=2))
  out = np.asarray(augment.augment_images(jax.random.key(0), images, 1.0, cfg))
  # Only the luma flip is left: each sample is either unchanged or its Householder reflection.
  unchanged = np.all(np.abs(out - np.asarray(images)) < 1e-6, axis=(1, 2, 3))
  assert 10 < unchanged.sum() < 54


def test_config_defaults_are_the_references():
  cfg = base.get_base_config().augment
  assert (cfg.kind, cfg.spec, cfg.ada_maxp) == ('none', 'bgc', 0.25)
  assert (cfg.ada_target, cfg.ada_interval, cfg.ada_kimg, cfg.initial_p) == (0.6, 4, 500.0, 0.0)
  assert cfg.diffaug_policy == diffaug.DEFAULT_POLICY
  defaults = ada.AdaSpec()
  for field in ada.STRENGTHS:
    assert tuple(np.atleast_1d(cfg.strengths[field])) == tuple(np.atleast_1d(getattr(defaults, field)))
  assert augment.ada_spec(cfg) == ada.AdaSpec.named('bgc')
  augment.validate_config(cfg)
  saved = ml_collections.ConfigDict(json.loads(cfg.to_json()))    # a run's config.json: lists
  assert augment.ada_spec(saved) == ada.AdaSpec.named('bgc')


@pytest.mark.parametrize('field,value,message', [
    ('kind', 'diff', 'augment.kind'),
    ('spec', 'bgcx', 'augment.spec'),
    ('ada_maxp', 0.0, 'no cap'),
    ('ada_maxp', 1.5, 'augment.ada_maxp'),
    ('ada_target', -0.1, 'augment.ada_target'),
    ('initial_p', 2.0, 'augment.initial_p'),
    ('ada_interval', 0, 'augment.ada_interval'),
    ('ada_kimg', 0.0001, 'augment.ada_kimg'),
    ('diffaug_policy', 'color,flip', 'augment.diffaug_policy'),
])
def test_validate_config_names_the_problem(field, value, message):
  with pytest.raises(ValueError, match=message):
    augment.validate_config(_cfg(**{field: value}))


def test_validate_config_checks_strengths():
  cfg = _cfg()
  cfg.strengths.scale_std = -1.0
  with pytest.raises(ValueError, match='scale_std'):
    augment.validate_config(cfg)


def test_run_config_checks_include_the_augmentation():
  from configs import cifar10, toy25  # pylint: disable=import-outside-toplevel
  from dgan_jax import config_checks  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config()
  config.augment.kind = 'ada'
  config_checks.validate(config, num_devices=1)
  config.augment.spec = 'bgcf'
  config.data.resolution = 16
  with pytest.raises(ValueError, match='larger than 21 pixels'):
    config_checks.validate(config, num_devices=1)
  config = toy25.get_config()
  config.augment.kind = 'diffaug'
  with pytest.raises(ValueError, match="augment.kind='none'"):
    config_checks.validate(config, num_devices=1)
  del config['augment']                 # a run config saved before augmentation existed
  config_checks.validate(config, num_devices=1)
