"""The JSD example (paper Figure 2): exact t = 0 case, shape of the curves, integration error."""
import json
import math

import numpy as np
import pytest

from dgan_jax.experiments import jsd

SETUP = jsd.Setup()
THETAS = np.linspace(-1.0, 1.0, 21)


@pytest.fixture(scope='module')
def results():
  return jsd.compute(THETAS, (0, 50, 200, 800), SETUP, d_star_thetas=(0.5,))


def test_t0_is_log2_off_zero_and_zero_at_zero(results):
  values = np.array(results['jsd']['0'])
  zero = THETAS == 0
  assert values[zero].tolist() == [0.0]
  np.testing.assert_array_equal(values[~zero], math.log(2))
  assert jsd.jsd_on_plane(1e-9, 0, SETUP) == (math.log(2), 0.0)


def test_positive_t_is_symmetric_continuous_and_increasing_in_abs_theta(results):
  for t in ('50', '200', '800'):
    values, bounds = np.array(results['jsd'][t]), np.array(results['error_bound'][t])
    np.testing.assert_allclose(values, values[::-1], rtol=0, atol=2 * bounds.max())
    half = values[THETAS >= 0]
    assert half[0] == pytest.approx(0.0, abs=bounds.max())
    assert np.all(np.diff(half) > 0), t
    assert np.all(half < math.log(2))
    # Continuity at 0, where t = 0 jumps by log 2: a small theta gives a small JSD.
    assert jsd.jsd_on_plane(1e-3, int(t), SETUP)[0] < 1e-3


def test_flatter_as_t_grows(results):
  slopes = [results['max_slope'][t] for t in ('50', '200', '800')]
  assert slopes[0] > slopes[1] > slopes[2] > 0
  at_one = [results['jsd'][t][-1] for t in ('0', '50', '200', '800')]
  assert at_one == sorted(at_one, reverse=True)


def test_integration_error_within_bound(results):
  """Two grid resolutions agree within the stated bound, and the plane's value equals the 1-D
  reduction (same y2 factor in both densities) computed independently by adaptive quadrature."""
  for t in ('50', '200', '800'):
    values, bounds = np.array(results['jsd'][t]), np.array(results['error_bound'][t])
    reference = np.array(results['jsd_1d'][t])
    assert np.all(bounds < 1e-8)
    assert np.all(np.abs(values - reference) <= bounds + 1e-13), t
  a, s = SETUP.coefficients(50)
  coarse, _ = jsd.plane_integral(0.5, a, s, SETUP.box_sigmas, 2)
  fine, _ = jsd.plane_integral(0.5, a, s, SETUP.box_sigmas, 8)
  assert abs(coarse - fine) < 1e-6
  assert jsd.tail_bound(SETUP.box_sigmas) < 1e-14


def test_truncated_box_error_is_within_tail_bound():
  a, s = SETUP.coefficients(200)
  narrow, _ = jsd.plane_integral(0.7, a, s, 2.0, 8)
  wide, _ = jsd.plane_integral(0.7, a, s, 8.0, 8)
  assert 0 < wide - narrow <= jsd.tail_bound(2.0)


def test_segment_density_integrates_to_one_and_is_finite_far_away():
  a, s = SETUP.coefficients(100)
  y2 = np.linspace(-10, 11, 20001)
  density = np.exp(jsd.log_segment_density(y2, a, s))
  assert np.trapezoid(density, y2) == pytest.approx(1.0, abs=1e-10)
  assert np.all(np.isfinite(jsd.log_segment_density(np.array([-60.0, 60.0]), a, s)))


def test_optimal_discriminator_depends_on_y1_only(results):
  y1, y2 = np.meshgrid(np.linspace(-1, 2, 7), np.linspace(-1, 2, 5))
  d = jsd.optimal_discriminator(y1, y2, 0.5, 200, SETUP)
  np.testing.assert_allclose(d, np.broadcast_to(d[:1], d.shape), atol=1e-12)
  assert d[0, 0] > 0.5 > d[0, -1]          # Real side (y1 < theta / 2) vs generated side.
  assert np.all(np.diff(results['d_star']['values']['50'][0]) <= 0)
  with pytest.raises(ValueError, match='t = 0'):
    jsd.optimal_discriminator(y1, y2, 0.5, 0, SETUP)


def test_uses_the_training_schedule():
  a, s = SETUP.coefficients(0)
  assert (a, s) == (1.0, 0.0)
  betas = np.linspace(1e-4, 2e-2, 1000)
  abar = np.cumprod(1 - betas)[399]
  a, s = SETUP.coefficients(400)
  assert a == pytest.approx(math.sqrt(abar), rel=1e-5)
  assert s == pytest.approx(math.sqrt(1 - abar), rel=1e-5)


def test_cli_writes_json_and_figure(tmp_path):
  assert jsd.main([f'--out={tmp_path}', '--num-theta=5', '--t=0,100']) == 0
  data = json.loads((tmp_path / 'jsd.json').read_text())
  assert data['t'] == [0, 100] and len(data['jsd']['100']) == 5
  assert (tmp_path / 'jsd_figure2.png').stat().st_size > 10_000
