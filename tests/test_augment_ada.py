"""The ADA pipeline: parity with the reference's `ADA` (same images, same random draws) and contracts.

Parity runs twice: against the recorded fixture tests/fixtures/augment_ada.npz (default suite; made
by tests/fixtures/make_augment_fixtures.py) and against the reference itself where torch and the
mirror exist (other seeds). Tolerance: 1e-4 of the image range [-1, 1].
"""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.augment import ada, filters
from dgan_jax.augment.grid_sample import affine_grid, grid_sample
from tests import augment_reference as ar

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'augment_ada.npz'
ATOL = 2e-4          # 1e-4 of the image range [-1, 1]
CASES = {name: (kwargs, p, shape, pin) for name, kwargs, p, shape, pin in ar.ADA_CASES}
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::UserWarning')


def replay(images, draws, kwargs, p):
  """dgan_jax's pipe on `images` with the reference's random draws (call order) for this spec."""
  spec = ada.AdaSpec(**kwargs)
  raw = ada.raw_from_sequence(draws, images.shape, spec)
  return np.asarray(ada.apply(jnp.asarray(images), ada.derive(raw, p, spec), spec))


@pytest.fixture(scope='module')
def fixture():
  data = np.load(FIXTURE)
  return data, {c['name']: c for c in json.loads(str(data['cases']))}


def test_fixture_has_every_op_and_case(fixture):
  _, cases = fixture
  assert set(cases) == set(CASES)
  single = {name for name, (kwargs, _, _, _) in CASES.items() if list(kwargs) == [name]}
  assert single == set(ada.OPS)


@pytest.mark.parametrize('name', list(CASES))
def test_matches_recorded_reference(fixture, name):
  data, cases = fixture
  kwargs, p, shape, pin = CASES[name]
  images = data['images.' + 'x'.join(map(str, shape))]
  draws = [data[f'{name}.draw{i}'] for i in range(int(data[f'{name}.ndraws']))]
  expected = data[f'{name}.out']
  assert cases[name]['setting'] == dict(kwargs=kwargs, p=p, pin_normal=pin)
  assert np.abs(expected - images).max() > 0.05          # the op did something
  np.testing.assert_allclose(replay(images, draws, kwargs, p), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize('name', list(CASES))
def test_matches_live_reference(reference_augment, name):
  adaaug, _ = reference_augment
  kwargs, p, shape, pin = CASES[name]
  images = ar.smooth_images(shape, seed=7)
  expected, draws = ar.run_ada(adaaug, images, p, 1000 + list(CASES).index(name), pin, **kwargs)
  np.testing.assert_allclose(replay(images, draws, kwargs, p), expected, rtol=0, atol=ATOL)


def test_named_specs_and_defaults_match_reference(reference_augment):
  adaaug, _ = reference_augment
  assert set(ada.SPECS) == set(adaaug.augpipe_specs)
  for name, ops in adaaug.augpipe_specs.items():
    assert ada.AdaSpec.named(name) == ada.AdaSpec(**ops)
  pipe = adaaug.ADA()
  for field in ada.STRENGTHS:
    expected = getattr(pipe, field)
    assert getattr(ada.AdaSpec(), field) == (tuple(expected) if isinstance(expected, list) else expected)
  np.testing.assert_array_equal(filters.band_filter_bank(), pipe.Hz_fbank.numpy())
  np.testing.assert_allclose(filters.geometric_filter(),
                             np.outer(pipe.Hz_geom.numpy(), pipe.Hz_geom.numpy()), rtol=1e-6)


def test_grid_sample_matches_torch(reference_augment):
  import torch  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
  theta = (np.eye(2, 3)[None] + 0.4 * rng.standard_normal((2, 2, 3))).astype(np.float32)
  t_grid = torch.nn.functional.affine_grid(torch.from_numpy(theta), [2, 3, 11, 6], align_corners=False)
  expected = torch.nn.functional.grid_sample(torch.from_numpy(images.transpose(0, 3, 1, 2)), t_grid,
                                             mode='bilinear', padding_mode='zeros', align_corners=False)
  grid = affine_grid(jnp.asarray(theta), (11, 6))
  np.testing.assert_allclose(grid, t_grid.numpy(), atol=1e-6)
  np.testing.assert_allclose(grid_sample(jnp.asarray(images), grid),
                             expected.numpy().transpose(0, 2, 3, 1), atol=1e-5)


def test_grid_sample_identity_and_half_pixel_shift():
  images = jnp.asarray(np.random.default_rng(1).standard_normal((1, 4, 5, 2)), jnp.float32)
  identity = affine_grid(jnp.asarray([[[1.0, 0, 0], [0, 1.0, 0]]]), (4, 5))
  np.testing.assert_allclose(grid_sample(images, identity), images, atol=1e-6)
  # Half a pixel to the right: the mean of horizontal neighbours; the last column half zero.
  shifted = affine_grid(jnp.asarray([[[1.0, 0, 1.0 / 5], [0, 1.0, 0]]]), (4, 5))
  out = np.asarray(grid_sample(images, shifted))
  x = np.asarray(images)
  np.testing.assert_allclose(out[:, :, :4], (x[:, :, :4] + x[:, :, 1:]) / 2, atol=1e-6)
  np.testing.assert_allclose(out[:, :, 4], x[:, :, 4] / 2, atol=1e-6)


def test_band_filters_sum_to_an_impulse():
  bank = filters.band_filter_bank()
  assert bank.shape == (4, 43)
  total = bank.sum(axis=0)
  np.testing.assert_allclose(total, np.eye(43)[21], atol=1e-6)
  np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-7)     # symmetric (zero phase)


def test_identity_transform_resamples_to_the_same_image():
  """Upsampling, sampling at the pixels and downsampling with the orthogonal sym6 pair is exact."""
  images = jnp.asarray(ar.smooth_images((2, 16, 12, 3), seed=3))
  g_inv = jnp.broadcast_to(jnp.eye(3), (2, 3, 3))
  out = jax.jit(ada._geometric_resample)(images, g_inv)    # pylint: disable=protected-access
  np.testing.assert_allclose(out, images, atol=2e-5)


def test_p_zero_is_exactly_the_identity():
  images = jnp.asarray(ar.smooth_images((4, 32, 32, 3), seed=2))
  f = jax.jit(lambda key, x, p: ada.augment(key, x, p, 'bgcfnc'))
  for key in range(3):
    np.testing.assert_array_equal(f(jax.random.key(key), images, 0.0), images)


def test_p_is_traced_without_recompiles():
  images = jnp.asarray(ar.smooth_images((4, 16, 16, 3), seed=2))
  f = jax.jit(lambda key, x, p: ada.augment(key, x, p, 'bgc'))
  outs = [f(jax.random.key(0), images, jnp.float32(p)) for p in (0.0, 0.2, 1.0)]
  assert f._cache_size() == 1    # pylint: disable=protected-access
  assert not np.array_equal(outs[1], outs[2])


def test_draw_shapes_do_not_depend_on_p():
  shape = (8, 32, 32, 3)
  spec = ada.AdaSpec.named('bgcfnc')
  shapes = [jax.eval_shape(lambda p: ada.draw(jax.random.key(0), shape, p, spec), jnp.float32(p))
            for p in (0.0, 1.0)]
  assert shapes[0] == shapes[1]
  assert shapes[0].values['noise'].shape == shape
  assert set(shapes[0].masks) == {op for op in ada.OPS if op != 'rotate'} | {'rotate_pre', 'rotate_post'}


def test_enable_rates_follow_p():
  n, p = 20000, 0.3
  draws = ada.draw(jax.random.key(5), (n, 24, 24, 3), p, 'bgcf')
  for op in ('xflip', 'xint', 'scale', 'hue', 'saturation'):
    assert abs(float(jnp.mean(draws.masks[op])) - p) < 0.02, op
  # Pre- and post-rotation each with 1 - sqrt(1 - p): one of them with probability p.
  either = draws.masks['rotate_pre'] | draws.masks['rotate_post']
  assert abs(float(jnp.mean(either)) - p) < 0.02
  assert abs(float(jnp.mean(draws.masks['imgfilter'])) - p) < 0.02
  assert set(np.unique(draws.values['rotate90'])) == {0.0, 1.0, 2.0, 3.0}


def test_gradient_flows_to_the_images():
  """For fixed draws the pipe is affine in the images: f(x + d) - f(x) = <grad, d> (and grad != 0)."""
  shape = (3, 24, 24, 3)
  images = jnp.asarray(ar.smooth_images(shape, seed=4))
  draws = ada.draw(jax.random.key(1), shape, 1.0, 'bgcfnc')
  weights = jax.random.normal(jax.random.key(2), shape)

  def f(x):
    return jnp.sum(ada.apply(x, draws, 'bgcfnc') * weights)

  grad = jax.jit(jax.grad(f))(images)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0.1
  direction = jax.random.normal(jax.random.key(3), shape)
  f = jax.jit(f)
  change = float(f(images + 0.01 * direction) - f(images))
  np.testing.assert_allclose(change, 0.01 * float(jnp.sum(grad * direction)), rtol=2e-3)


def test_bad_inputs_fail_with_the_fix():
  with pytest.raises(ValueError, match='Unknown ADA spec'):
    ada.AdaSpec.named('bgx')
  with pytest.raises(ValueError, match='Unknown ADA strength'):
    ada.AdaSpec.named('bgc', rotate_std=1.0)
  with pytest.raises(ValueError, match='>= 0'):
    ada.AdaSpec(scale=-1.0)
  with pytest.raises(ValueError, match='larger than 21 pixels'):
    ada.augment(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), 0.5, 'bgcf')
  with pytest.raises(ValueError, match='RGB'):
    ada.augment(jax.random.key(0), jnp.zeros((1, 16, 16, 2)), 0.5, 'color')
  with pytest.raises(ValueError, match='reference draws'):
    ada.raw_from_sequence([np.zeros(4)], (4, 16, 16, 3), 'blit')


def test_second_order_gradient_for_r1():
  """R1 differentiates |d D(aug(x)) / dx|^2 with respect to D's weights: a double backward through
  the pipe (the reference's grid_sample_gradfix exists for this). Checked against a finite difference."""
  shape = (2, 24, 24, 3)
  images = jnp.asarray(ar.smooth_images(shape, seed=5))
  draws = ada.draw(jax.random.key(4), shape, 1.0, 'bgcfnc')

  def r1_penalty(w):
    grad_x = jax.grad(lambda x: jnp.sum(jnp.tanh(w * ada.apply(x, draws, 'bgcfnc'))))(images)
    return jnp.sum(jnp.square(grad_x))

  value_and_grad = jax.jit(jax.value_and_grad(r1_penalty))
  _, grad_w = value_and_grad(jnp.float32(0.7))
  plus, _ = value_and_grad(jnp.float32(0.7 + 1e-2))
  minus, _ = value_and_grad(jnp.float32(0.7 - 1e-2))
  assert np.isfinite(float(grad_w)) and abs(float(grad_w)) > 1.0
  np.testing.assert_allclose(float(grad_w), float(plus - minus) / 2e-2, rtol=2e-2)
