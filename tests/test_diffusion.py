"""The adaptive diffusion against the reference's formulas and rules (reference-behaviour.md 1.1, 3.3)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from configs import base
from dgan_jax import diffusion


def reference_betas(kind, beta_start, beta_end, T):
  """The reference's get_beta_schedule, re-derived in float64 numpy from its formulas."""
  k = np.arange(1, T + 1, dtype=np.float64)
  if kind == 'linear':
    return np.linspace(beta_start, beta_end, T)
  if kind == 'quad':
    return np.linspace(beta_start**0.5, beta_end**0.5, T) ** 2
  if kind == 'const':
    return np.full(T, beta_end)
  if kind == 'jsd':
    return 1.0 / np.linspace(T, 1, T)
  if kind == 'sigmoid':
    return 1 / (1 + np.exp(-np.linspace(-6, 6, T))) * (beta_end - beta_start) + beta_start
  if kind == 'cosine':
    x = np.linspace(0, T + 1, T + 1)
    ac = np.cos(((x / (T + 1)) + 0.008) / 1.008 * np.pi * 0.5) ** 2
    ac = ac / ac[0]
    return np.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
  if kind == 'continuous_t':
    return 1 - np.exp(-0.1 / T - 0.5 * (5.0 - 0.1) * (2 * k - 1) / T**2)
  raise ValueError(kind)


@pytest.mark.parametrize('kind', diffusion.SCHEDULES)
@pytest.mark.parametrize('T', [10, 137, 1000])
def test_schedule_matches_reference(kind, T):
  abar = np.concatenate([[1.0], np.cumprod(1 - reference_betas(kind, 1e-4, 2e-2, T))])
  sqrt_abar, sqrt_1m = jax.jit(diffusion.schedule, static_argnums=(0, 1, 2, 4))(
      kind, 1e-4, 2e-2, jnp.int32(T), 1000)
  assert sqrt_abar.shape == sqrt_1m.shape == (1001,)
  np.testing.assert_allclose(np.asarray(sqrt_abar)[:T + 1], np.sqrt(abar), atol=1e-6, rtol=0)
  np.testing.assert_allclose(np.asarray(sqrt_1m)[:T + 1], np.sqrt(1 - abar), atol=1e-6, rtol=0)
  # Entries past T repeat the value at T.
  assert np.all(np.asarray(sqrt_abar)[T:] == np.asarray(sqrt_abar)[T])


def test_schedule_table_values_from_reference_doc():
  """The doc's table for the default linear schedule: abar_T at T = 10, 100, 1000."""
  for T, abar_T in [(10, 0.904), (100, 0.364), (1000, 4.0e-5)]:
    a, _ = diffusion.schedule('linear', 1e-4, 2e-2, T, 1000)
    assert float(a[T]) ** 2 == pytest.approx(abar_T, rel=0.01)


def test_schedule_does_not_recompile_for_new_T():
  f = jax.jit(lambda T: diffusion.schedule('linear', 1e-4, 2e-2, T, 1000))
  for T in (10, 11, 500):
    f(jnp.int32(T))
  assert f._cache_size() == 1


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match='Unknown beta schedule'):
    diffusion.schedule('cosin', 1e-4, 2e-2, 10, 1000)


def _cfg(**overrides):
  cfg = base.get_diffusion_config()
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


@pytest.mark.parametrize('dist,weights', [('priority', 'reference'), ('priority', 'paper'),
                                          ('uniform', 'reference')])
def test_t_epl_distribution(dist, weights):
  T = 20
  cfg = _cfg(ts_dist=dist, priority_weights=weights)
  t_epl = np.asarray(diffusion.sample_t_epl(jax.random.key(1), jnp.int32(T), cfg, num_pools=4000))
  assert t_epl.shape == (4000, 64)
  assert np.all(t_epl[:, 32:] == 0)                 # 32 clean entries, as the reference.
  draws = t_epl[:, :32].ravel()
  assert draws.min() >= 1 and draws.max() <= T
  values = np.arange(1, T + 1)
  if dist == 'uniform':
    expected = np.ones(T)
  else:
    expected = (values - 1.0) if weights == 'reference' else values * 1.0
  expected = expected / expected.sum()
  counts = np.bincount(draws, minlength=T + 1)[1:]
  if weights == 'reference' and dist == 'priority':
    assert counts[0] == 0                           # t = 1 is never drawn (reference off-by-one).
  mask = expected > 0
  chi2 = stats.chisquare(counts[mask], expected[mask] * counts.sum())
  assert chi2.pvalue > 1e-3, chi2


def test_no_zero_entries_option():
  cfg = _cfg(epl_zeros=0)
  t_epl = np.asarray(diffusion.sample_t_epl(jax.random.key(0), jnp.int32(50), cfg, num_pools=3))
  assert t_epl.shape == (3, 64) and np.all(t_epl >= 2)


def reference_controller(r_ds, target, batch, interval, ada_kimg, t_min, t_max):
  """training_loop.py's adaptive step and diffusion.update_T, in float64 Python."""
  p, out = 0.0, []
  for r in r_ds:
    adjust = np.sign(r - target) * (batch * interval) / (ada_kimg * 1000)
    p = float(np.clip(p + adjust, 0.0, 1.0))
    T = int(np.clip(int(t_min + round(p * (t_max - t_min))), t_min, t_max))
    out.append((p, T))
  return out


def test_controller_trajectory_equals_reference_rule():
  rng = np.random.default_rng(0)
  # r_d is a mean of signs, k / n. Long climbs to the clip at 1, descents to the clip at 0 (the
  # level is then 1 - m * C, whose T can sit within 1e-3 of a rounding tie), r_d exactly at the
  # target, and noise around it.
  k = np.concatenate([np.full(500, 288), rng.integers(-320, 321, 300), np.full(800, 32),
                      np.full(5, 192), rng.integers(160, 225, 2000)])
  r_ds = k / 320.0
  cfg = _cfg()
  p, T = diffusion.controller_trajectory(cfg, r_ds, batch_size=64)
  ref = reference_controller(r_ds, 0.6, 64, 4, 100, 10, 1000)
  np.testing.assert_array_equal(T, [t for _, t in ref])
  np.testing.assert_allclose(p, [q for q, _ in ref], atol=1e-5)
  assert T.max() == 1000 and T.min() == 10 and p.max() == 1.0


def test_controller_step_size_cifar():
  """C_p = 64 * 4 / 100000 = 0.00256 per update; T moves by ~2.53 (reference section 3.3)."""
  p, T = diffusion.controller_trajectory(_cfg(), [1.0, 1.0], batch_size=64)
  assert p[0] == pytest.approx(0.00256, rel=1e-6) and T[0] == 13 and T[1] == 15


def test_noising_t0_is_identity_and_formula():
  cfg = _cfg()
  x = jax.random.normal(jax.random.key(0), (64, 8, 8, 3))
  T = jnp.int32(200)
  sqrt_abar, sqrt_1m = diffusion.schedule('linear', 1e-4, 2e-2, T, 1000)
  eps = jax.random.normal(jax.random.key(1), x.shape)
  t = jnp.arange(64) % 3 * 100                      # t = 0, 100, 200
  y = diffusion.q_sample(x, t, sqrt_abar, sqrt_1m, cfg.noise_std, eps)
  clean = np.asarray(t) == 0
  np.testing.assert_array_equal(np.asarray(y)[clean], np.asarray(x)[clean])
  expect = (sqrt_abar[t][:, None, None, None] * x
            + sqrt_1m[t][:, None, None, None] * 0.05 * eps)
  np.testing.assert_allclose(y, expect, atol=1e-6)
  # diffuse() draws t from the pool and works for any shape (vectors, feature maps, images).
  for shape in [(16, 2), (16, 4, 4, 7), (16, 3, 5)]:
    xs = jnp.ones(shape)
    ys, ts = diffusion.diffuse(jax.random.key(2), xs, jnp.zeros((64,), jnp.int32), T, cfg)
    np.testing.assert_array_equal(ys, xs)
    assert ts.shape == (16,) and np.all(np.asarray(ts) == 0)


def test_vanilla_gan_disables_noising():
  cfg = _cfg(enabled=False)
  x = jnp.arange(12.0).reshape(4, 3)
  y, t = diffusion.diffuse(jax.random.key(0), x, jnp.full((64,), 7), jnp.int32(10), cfg)
  np.testing.assert_array_equal(y, x)
  np.testing.assert_array_equal(t, 0)


def test_gradients_flow_through_noising():
  cfg = _cfg()
  x = jax.random.normal(jax.random.key(0), (32, 4, 4, 3))
  t_epl = jnp.concatenate([jnp.arange(1, 33), jnp.zeros(32, jnp.int32)])
  T = jnp.int32(100)

  def f(x):
    y, t = diffusion.diffuse(jax.random.key(5), x, t_epl, T, cfg)
    return jnp.sum(y), t
  g, t = jax.grad(f, has_aux=True)(x)
  sqrt_abar, _ = diffusion.schedule('linear', 1e-4, 2e-2, T, 1000)
  np.testing.assert_allclose(g, jnp.broadcast_to(sqrt_abar[t][:, None, None, None], x.shape),
                             rtol=1e-6)
  assert np.any(np.asarray(t) > 0) and np.any(np.asarray(t) == 0)


@pytest.mark.parametrize('field,value,message', [
    ('t_min', 2000, 't_min=2000 is larger than diffusion.t_max=1000'),
    ('beta_schedule', 'cosin', "beta_schedule='cosin' is unknown"),
    ('target', 1.5, 'target=1.5 is outside [0, 1]'),
    ('target', -0.1, 'target=-0.1 is outside [0, 1]'),
    ('noise_std', -0.05, 'noise_std=-0.05 is negative'),
    ('ts_dist', 'gauss', "ts_dist='gauss' is unknown"),
])
def test_bad_diffusion_config_messages(field, value, message):
  with pytest.raises(ValueError) as err:
    diffusion.validate_config(_cfg(**{field: value}))
  assert message in str(err.value)


def test_level_to_T_rounds_half_to_even_like_python():
  cfg = _cfg(t_min=1, t_max=5, ada_kimg=0.008)     # 8 ticks per unit, t_add = 4
  for ticks in range(9):                             # p * 4 = 0, 0.5, 1, 1.5, ...
    assert int(diffusion.ticks_to_T(jnp.int32(ticks), cfg)) == 1 + round(ticks / 8 * 4)
  assert int(diffusion.ticks_to_T(jnp.int32(100_000), _cfg())) == 1000
