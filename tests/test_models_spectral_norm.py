"""Spectral norm against torch.nn.utils.spectral_norm: training steps (power iteration, stored u/v),
evaluation (sigma from stored u, v and the current weight) and gradients, with weight changes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import spectral_norm as sn

torch = pytest.importorskip('torch')


def _to_ours(kind, w):
  """torch weight -> our layout."""
  if kind == 'dense':
    return w.T
  if kind.startswith('convT'):
    return w.transpose(2, 3, 0, 1)    # [I, O, k, k] -> [k, k, I, O]
  return w.transpose(2, 3, 1, 0)      # OIHW -> HWIO


CASES = {
    'conv': (lambda: torch.nn.Conv2d(6, 5, 3, 2, 1),
             lambda: sn.SNConv2d(6, 5, 3, stride=2, padding=1), (2, 6, 9, 9)),
    'grouped': (lambda: torch.nn.Conv2d(6, 6, 3, 1, 1, groups=6, bias=False),
                lambda: sn.SNConv2d(6, 6, 3, padding=1, groups=6, use_bias=False), (2, 6, 5, 5)),
    'convT': (lambda: torch.nn.ConvTranspose2d(7, 4, 4, 1, 0, bias=False),
              lambda: sn.SNConvTranspose2d(7, 4, 4, use_bias=False), (3, 7, 1, 1)),
    'convT_s2': (lambda: torch.nn.ConvTranspose2d(3, 4, 4, 2, 1),
                 lambda: sn.SNConvTranspose2d(3, 4, 4, stride=2, padding=1), (2, 3, 5, 5)),
    'dense': (lambda: torch.nn.Linear(9, 4), lambda: sn.SNDense(9, 4), (5, 9)),
}


def _nhwc(a):
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


@pytest.mark.parametrize('kind', sorted(CASES))
def test_matches_torch_over_training_and_eval_steps(kind):
  make_torch, make_ours, shape = CASES[kind]
  torch.manual_seed(0)
  ref = torch.nn.utils.spectral_norm(make_torch())
  ours = make_ours()
  rng = np.random.default_rng(0)
  x0 = rng.standard_normal(shape).astype(np.float32)
  variables = ours.init(jax.random.key(0), jnp.asarray(_nhwc(x0)), update=False)
  lay = kind
  params = {'weight': jnp.asarray(_to_ours(lay, ref.weight_orig.detach().numpy()))}
  if ref.bias is not None:
    params['bias'] = jnp.asarray(ref.bias.detach().numpy())
  # Fresh modules: stored u, v are normalised N(0, 1) draws of the right sizes.
  for name, buf in (('weight_u', ref.weight_u), ('weight_v', ref.weight_v)):
    ours_vec = np.asarray(variables['spectral'][name])
    assert ours_vec.shape == tuple(buf.shape)
    assert np.linalg.norm(ours_vec) == pytest.approx(1.0, abs=1e-6)
  spectral = {'weight_u': jnp.asarray(ref.weight_u.numpy()),
              'weight_v': jnp.asarray(ref.weight_v.numpy())}

  def loss(p, s, x, update):
    y, new = ours.apply({'params': p, 'spectral': s}, x, update=update, mutable=['spectral'])
    return jnp.sum(y * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size), (y, new)

  for step in range(4):
    x = rng.standard_normal(shape).astype(np.float32)
    for train in (True, False):
      ref.train(train)
      ref.zero_grad()
      y_ref = ref(torch.from_numpy(x))
      w_ref = torch.arange(y_ref.numel(), dtype=torch.float32).reshape(y_ref.shape) / y_ref.numel()
      if y_ref.ndim == 4:   # the same weighting in NHWC order
        w_ref = torch.from_numpy(np.ascontiguousarray(
            (np.arange(y_ref.numel(), dtype=np.float32).reshape(_nhwc(y_ref.detach().numpy()).shape)
             / y_ref.numel()).transpose(0, 3, 1, 2)))
      (y_ref * w_ref).sum().backward()
      grads, (y, new) = jax.grad(loss, has_aux=True)(params, spectral, jnp.asarray(_nhwc(x)), train)
      np.testing.assert_allclose(np.asarray(y), _nhwc(y_ref.detach().numpy()), atol=1e-5,
                                 err_msg=f'{kind} step {step} train={train}')
      np.testing.assert_allclose(np.asarray(grads['weight']),
                                 _to_ours(lay, ref.weight_orig.grad.numpy()), atol=1e-5)
      np.testing.assert_allclose(np.asarray(new['spectral']['weight_u']), ref.weight_u.numpy(),
                                 atol=1e-6)
      np.testing.assert_allclose(np.asarray(new['spectral']['weight_v']), ref.weight_v.numpy(),
                                 atol=1e-6)
      if not train:   # evaluation leaves u, v alone
        np.testing.assert_array_equal(np.asarray(new['spectral']['weight_u']),
                                      np.asarray(spectral['weight_u']))
      spectral = new['spectral']
    # An optimizer step changes the weight in both; evaluation then uses the new weight.
    delta = 0.1 * rng.standard_normal(ref.weight_orig.shape).astype(np.float32)
    with torch.no_grad():
      ref.weight_orig.add_(torch.from_numpy(delta))
    params = dict(params, weight=params['weight'] + _to_ours(lay, delta))


def test_init_stores_draws_without_iteration():
  layer = sn.SNDense(5, 3)
  v1 = layer.init(jax.random.key(1), jnp.ones((2, 5)), update=True)
  v2 = layer.init(jax.random.key(1), jnp.ones((2, 5)), update=False)
  for name in ('weight_u', 'weight_v'):
    np.testing.assert_array_equal(v1['spectral'][name], v2['spectral'][name])


def test_update_needs_mutable_spectral():
  layer = sn.SNDense(5, 3)
  v = layer.init(jax.random.key(1), jnp.ones((2, 5)), update=False)
  with pytest.raises(Exception, match='spectral'):
    layer.apply(v, jnp.ones((2, 5)), update=True)
  y = layer.apply(v, jnp.ones((2, 5)), update=False)   # evaluation needs nothing mutable
  assert y.shape == (2, 3)


def test_bad_channels_message():
  layer = sn.SNConv2d(4, 8, 3)
  with pytest.raises(ValueError, match='expected 4 input channels'):
    layer.init(jax.random.key(0), jnp.ones((1, 5, 5, 3)), update=False)
  with pytest.raises(ValueError, match='multiples of groups'):
    sn.SNConv2d(4, 6, 3, groups=4)
