"""DiffAugment: parity with the reference's `DiffAugment` (same images, same random draws) and contracts.

Parity against the recorded fixture tests/fixtures/augment_diffaug.npz (default suite; made by
tests/fixtures/make_augment_fixtures.py) and against the reference itself where torch and the
mirror exist.
"""
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.augment import diffaug
from tests import augment_reference as ar
import reference_code

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'augment_diffaug.npz'
ATOL = 2e-4          # 1e-4 of the image range [-1, 1]
CASES = {name: (policy, shape) for name, policy, shape in ar.DIFFAUG_CASES}
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::UserWarning')


def replay(images, draws, policy):
  ours = diffaug.draws_from_sequence(draws, images.shape, policy)
  return np.asarray(diffaug.apply(jnp.asarray(images), ours, policy))


@pytest.mark.parametrize('name', list(CASES))
def test_matches_recorded_reference(name):
  data = np.load(FIXTURE)
  assert {c['name'] for c in json.loads(str(data['cases']))} == set(CASES)
  policy, shape = CASES[name]
  images = data['images.' + 'x'.join(map(str, shape))]
  draws = [data[f'{name}.draw{i}'] for i in range(int(data[f'{name}.ndraws']))]
  np.testing.assert_allclose(replay(images, draws, policy), data[f'{name}.out'], rtol=0, atol=ATOL)


@pytest.mark.parametrize('name', list(CASES))
def test_matches_live_reference(reference_augment, name):
  _, reference = reference_augment
  policy, shape = CASES[name]
  images = ar.smooth_images(shape, seed=5)
  for seed in range(10):
    expected, draws = ar.run_diffaug(reference, images, seed=100 + seed, policy=policy)
    np.testing.assert_allclose(replay(images, draws, policy), expected, rtol=0, atol=ATOL)


def test_projected_gan_variant_is_the_same_transform(reference_augment):
  """diffusion-projected-gan's functional DiffAugment draws and computes the same as the module."""
  import torch  # pylint: disable=import-outside-toplevel
  _, module_version = reference_augment
  images = ar.smooth_images((4, 16, 16, 3), seed=6)
  expected, _ = ar.run_diffaug(module_version, images, seed=3)
  with reference_code.imported(pathlib.Path(tempfile.mkdtemp()), 'diffusion-projected-gan',
                               ['pg_modules/diffaug.py'], ['pg_modules.diffaug']) as (pg,):
    torch.manual_seed(3)
    out = pg.DiffAugment(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
                         policy=diffaug.DEFAULT_POLICY)
    unchanged = pg.DiffAugment(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
  np.testing.assert_array_equal(out.numpy().transpose(0, 2, 3, 1), expected)
  np.testing.assert_array_equal(unchanged.numpy().transpose(0, 2, 3, 1), images)  # default policy ''


def test_translation_and_cutout_geometry():
  images = jnp.arange(1 * 10 * 10 * 1, dtype=jnp.float32).reshape(1, 10, 10, 1) + 1
  draws = diffaug.DiffAugDraws(values={'translation': jnp.asarray([[-1, 2]], jnp.int32),
                                       'cutout': jnp.asarray([[0, 5]], jnp.int32)})
  out = np.asarray(diffaug.apply(images, draws, 'translation'))[0, ..., 0]
  x = np.asarray(images)[0, ..., 0]
  np.testing.assert_array_equal(out[1:, :8], x[:-1, 2:])     # out[i, j] = x[i - 1, j + 2]
  assert not out[0].any() and not out[:, 8:].any()          # zeros shifted in
  cut = np.asarray(diffaug.apply(images, draws, 'cutout'))[0, ..., 0]
  # Size 2 (0.2 * 10): rows clamp(0 - 1 + a) = {0}, columns {4, 5}.
  zero = np.zeros_like(cut, bool)
  zero[0, 4:6] = True
  np.testing.assert_array_equal(cut == 0, zero)


def test_draw_ranges_and_fixed_shapes():
  shape = (4000, 10, 24, 3)
  draws = diffaug.draw(jax.random.key(0), shape)
  t = np.asarray(draws.values['translation'])
  assert t.shape == (4000, 2)
  assert (t[:, 0].min(), t[:, 0].max()) == (-1, 1)        # int(10 * 0.125 + 0.5)
  assert (t[:, 1].min(), t[:, 1].max()) == (-3, 3)        # int(24 * 0.125 + 0.5)
  c = np.asarray(draws.values['cutout'])
  assert (c[:, 0].min(), c[:, 0].max()) == (0, 10)        # size 2 (even): offsets in [0, 11)
  assert (c[:, 1].min(), c[:, 1].max()) == (0, 23)        # size 5 (odd): offsets in [0, 24)
  for op in ('brightness', 'saturation', 'contrast'):
    u = np.asarray(draws.values[op])
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02


def test_gradient_flows_and_no_recompile():
  shape = (3, 16, 16, 3)
  images = jnp.asarray(ar.smooth_images(shape, seed=8))
  weights = jax.random.normal(jax.random.key(1), shape)
  draws = diffaug.draw(jax.random.key(2), shape)

  @jax.jit
  def f(x):
    return jnp.sum(diffaug.apply(x, draws) * weights)

  grad = jax.grad(f)(images)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0.1
  direction = jax.random.normal(jax.random.key(3), shape)
  change = float(f(images + 0.01 * direction) - f(images))     # affine in the images
  np.testing.assert_allclose(change, 0.01 * float(jnp.sum(grad * direction)), rtol=2e-3)
  g = jax.jit(diffaug.augment)
  outs = [g(jax.random.key(k), images) for k in range(3)]
  assert g._cache_size() == 1 and not np.array_equal(outs[0], outs[1])   # pylint: disable=protected-access


def test_bad_policy_fails_with_the_fix():
  for policy in ('', 'color,flip', 'color,color'):
    with pytest.raises(ValueError, match='color,translation,cutout'):
      diffaug.draw(jax.random.key(0), (1, 8, 8, 3), policy)
