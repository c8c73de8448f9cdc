"""Feature-level diffusion options (Diffusion-ProjectedGAN) against the reference's
`pg_modules/diffusion.py`: tables, the p-dependent t_epl, per-channel steps, q_sample on a feature
map. The recorded fixture runs without the reference; the live tests where torch/timm/mirror exist."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import projected_helpers
from configs import base
from dgan_jax import diffusion
from fixtures import make_feature_diffusion as fixture_script

FIXTURE = projected_helpers.FIXTURES / 'feature_diffusion.npz'


def projected_cfg(**overrides):
  """The projected reference's diffusion settings (projector.py, train.py defaults)."""
  cfg = base.get_diffusion_config()
  cfg.update(t_min=5, t_max=500, beta_start=1e-4, beta_end=1e-2, noise_std=0.5,
             epl_nonzero_rule='level', epl_max_nonzero=48, t_per_channel=True)
  cfg.update(overrides)
  diffusion.validate_config(cfg)
  return cfg


def _check_tables(recorded_abar, recorded_1m, T):
  ours_abar, ours_1m = diffusion.schedule('linear', 1e-4, 1e-2, T, 500)
  np.testing.assert_allclose(np.asarray(ours_abar)[:T + 1], recorded_abar, atol=2e-6, rtol=0)
  np.testing.assert_allclose(np.asarray(ours_1m)[:T + 1], recorded_1m, atol=2e-6, rtol=0)


def _check_level_rule(levels, Ts, nonzero):
  cfg = projected_cfg()
  for p, T_ref, n_ref in zip(levels, Ts, nonzero):
    ticks = jnp.int32(diffusion.level_ticks(float(p), cfg))
    T = diffusion.ticks_to_T(ticks, cfg)
    assert int(T) == T_ref, p
    assert int(diffusion.num_nonzero_entries(ticks, cfg)) == n_ref, p
    t_epl = np.asarray(diffusion.sample_t_epl(jax.random.key(0), T, cfg, 3, ticks))
    assert t_epl.shape == (3, 64)
    assert np.all(t_epl[:, :n_ref] >= 2) and np.all(t_epl[:, :n_ref] <= T_ref), p
    assert np.all(t_epl[:, n_ref:] == 0), p


def _ours_forward(x_nchw, noise_nchw, t, T):
  cfg = projected_cfg()
  sqrt_abar, sqrt_1m = diffusion.schedule('linear', cfg.beta_start, cfg.beta_end, T, cfg.t_max)
  y = diffusion.q_sample(jnp.asarray(x_nchw.transpose(0, 2, 3, 1)), jnp.asarray(t), sqrt_abar,
                         sqrt_1m, cfg.noise_std, jnp.asarray(noise_nchw.transpose(0, 2, 3, 1)))
  return np.asarray(y).transpose(0, 3, 1, 2)


def test_matches_recorded_reference():
  rec = np.load(FIXTURE)
  for T in fixture_script.TS:
    _check_tables(rec[f'abar_sqrt_{T}'], rec[f'one_minus_{T}'], T)
  _check_level_rule(rec['levels'], rec['T_of_level'], rec['nonzero_of_level'])
  y = _ours_forward(rec['x'], rec['noise'], rec['t'], fixture_script.FORWARD_T)
  np.testing.assert_allclose(y, rec['y'], atol=2e-6)


def test_matches_live_reference(tmp_path):
  from reference_code import projected_reference  # pylint: disable=import-outside-toplevel
  with projected_reference(tmp_path) as pg:
    rec = fixture_script.record(pg)
    diff = fixture_script.make_diffusion(pg)
    # The draws of t_epl: weights t - 1 over 1..T (so t = 1 never), as ours with
    # priority_weights='reference'. Level 0.0303 -> T = 20, 2 draws per update.
    ref_draws = []
    np.random.seed(0)
    diff.p = 0.0303
    for _ in range(3000):
      diff.update_T()
      ref_draws.append(diff.t_epl[:2])
  for T in fixture_script.TS:
    _check_tables(rec[f'abar_sqrt_{T}'], rec[f'one_minus_{T}'], T)
  _check_level_rule(rec['levels'], rec['T_of_level'], rec['nonzero_of_level'])
  np.testing.assert_allclose(_ours_forward(rec['x'], rec['noise'], rec['t'],
                                           fixture_script.FORWARD_T), rec['y'], atol=2e-6)
  cfg = projected_cfg()
  ticks = jnp.int32(diffusion.level_ticks(0.0303, cfg))
  assert int(diffusion.ticks_to_T(ticks, cfg)) == 20
  ours = np.asarray(diffusion.sample_t_epl(jax.random.key(1), jnp.int32(20), cfg, 3000, ticks))
  ref_counts = np.bincount(np.concatenate(ref_draws), minlength=21)[2:]
  our_counts = np.bincount(ours[:, :2].ravel(), minlength=21)[2:]
  assert np.bincount(np.concatenate(ref_draws), minlength=21)[:2].sum() == 0
  assert np.bincount(ours[:, :2].ravel(), minlength=21)[:2].sum() == 0
  chi2 = stats.chi2_contingency(np.stack([ref_counts, our_counts]))
  assert chi2.pvalue > 1e-3, chi2


def test_per_channel_draws_and_gradients():
  cfg = projected_cfg()
  t_epl = jnp.concatenate([jnp.arange(1, 49), jnp.zeros(16, jnp.int32)])
  x = jax.random.normal(jax.random.key(0), (8, 5, 5, 40))
  y, t = diffusion.diffuse(jax.random.key(1), x, t_epl, jnp.int32(100), cfg)
  assert t.shape == (8, 40) and y.shape == x.shape
  t = np.asarray(t)
  assert set(np.unique(t)) <= set(np.asarray(t_epl).tolist())
  assert len(np.unique(t[0])) > 10                 # channels of one sample differ
  sqrt_abar, _ = diffusion.schedule('linear', 1e-4, 1e-2, 100, 500)
  clean = t == 0
  ys, xs = np.asarray(y).transpose(0, 3, 1, 2), np.asarray(x).transpose(0, 3, 1, 2)
  np.testing.assert_array_equal(ys[clean], xs[clean])   # t = 0 channels pass unchanged
  g = jax.grad(lambda x: jnp.sum(diffusion.diffuse(jax.random.key(1), x, t_epl, jnp.int32(100),
                                                   cfg)[0]))(x)
  np.testing.assert_allclose(g, jnp.broadcast_to(sqrt_abar[t][:, None, None, :], x.shape),
                             rtol=1e-6)


def test_level_rule_controller():
  """p = 0: every entry clean (the projected reference starts without diffusion); the
  controller raises p, T and the number of drawn entries together."""
  cfg = projected_cfg()
  state = diffusion.init_state(jax.random.key(0), cfg, num_pools=2)
  assert int(state.T) == 5 and np.all(np.asarray(state.t_epl) == 0)
  for _ in range(300):
    state = state.replace(sign_sum=jnp.float32(1.0), sign_count=jnp.float32(1.0))
    state = diffusion.update(state, cfg, batch_size=64)
  p = 300 * 64 * 4 / 100_000
  assert float(state.p) == pytest.approx(p)
  assert int(state.T) == 5 + round(p * 495)
  n = min(round(p * 64), 48)
  t_epl = np.asarray(state.t_epl)
  assert np.all(t_epl[:, :n] > 0) and np.all(t_epl[:, n:] == 0)


def test_rounds_half_to_even_like_python():
  cfg = projected_cfg(ada_kimg=0.128, epl_max_nonzero=64)   # 128 ticks: p * 64 = ticks / 2
  for ticks in range(129):
    assert int(diffusion.num_nonzero_entries(jnp.int32(ticks), cfg)) == round(ticks / 2)


def test_pixel_defaults_unchanged():
  cfg = base.get_diffusion_config()
  assert cfg.epl_nonzero_rule == 'fixed' and cfg.t_per_channel is False
  t_epl = np.asarray(diffusion.sample_t_epl(jax.random.key(0), jnp.int32(50), cfg, 2))
  assert np.all(t_epl[:, :32] > 0) and np.all(t_epl[:, 32:] == 0)
  with pytest.raises(ValueError, match='needs the level'):
    diffusion.sample_t_epl(jax.random.key(0), jnp.int32(50), projected_cfg(), 2)


@pytest.mark.parametrize('field,value,message', [
    ('epl_nonzero_rule', 'levels', "epl_nonzero_rule='levels' is unknown"),
    ('epl_max_nonzero', 65, 'epl_max_nonzero=65 must be an integer in [0, epl_size=64]'),
    ('epl_max_nonzero', -1, 'epl_max_nonzero=-1 must be an integer'),
])
def test_bad_feature_options(field, value, message):
  cfg = base.get_diffusion_config()
  cfg.epl_nonzero_rule = 'level'
  cfg[field] = value
  with pytest.raises(ValueError) as err:
    diffusion.validate_config(cfg)
  assert message in str(err.value)


def test_q_sample_rejects_mismatched_t():
  x = jnp.zeros((2, 3, 3, 4))
  table = jnp.ones(11)
  with pytest.raises(ValueError, match=r'\[N\] or \[N, C\]'):
    diffusion.q_sample(x, jnp.zeros((2, 3), jnp.int32), table, table, 0.5, x)
