"""Generator semantics: truncation, noise modes, w_avg, style mixing, path lengths, precision."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models.generator import Generator, path_lengths, synthesis_num_ws

TINY = dict(z_dim=32, w_dim=32, img_resolution=16, img_channels=3, mapping_layers=2,
            channel_base=256, channel_max=32, conv_clamp=256)


def make(**overrides):
  g = Generator(**{**TINY, **overrides})
  z = jax.random.normal(jax.random.key(1), (4, g.z_dim))
  c = jax.random.normal(jax.random.key(2), (4, g.c_dim))
  variables = g.init({'params': jax.random.key(0), 'noise': jax.random.key(3)}, z, c)
  # Make noise and w_avg matter: non-zero noise strengths and a non-zero w_avg.
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.5 if p[-1].key == 'noise_strength' else v, variables['params'])
  buffers = dict(variables['buffers'])
  buffers['mapping'] = {'w_avg': jax.random.normal(jax.random.key(4), (g.w_dim,))}
  return g, {'params': params, 'buffers': buffers}, z, c


@pytest.fixture(scope='module')
def tiny():
  return make()


def test_output_shape_dtype_and_num_ws(tiny):
  g, v, z, c = tiny
  img = g.apply(v, z, c, rngs={'noise': jax.random.key(0)})
  assert img.shape == (4, 16, 16, 3) and img.dtype == jnp.float32
  assert g.num_ws == synthesis_num_ws(16) == 6
  ws = g.apply(v, z, c, method='mapping')
  assert ws.shape == (4, 6, 32)
  np.testing.assert_array_equal(ws[:, 0], ws[:, 5])   # broadcast of one w


def test_truncation_psi_zero_equals_w_avg_image(tiny):
  g, v, z, c = tiny
  img0 = g.apply(v, z, c, truncation_psi=0.0, noise_mode='const')
  w_avg = jnp.broadcast_to(v['buffers']['mapping']['w_avg'], (4, g.num_ws, g.w_dim))
  img_avg = g.apply(v, w_avg, noise_mode='const', method='synthesis')
  np.testing.assert_allclose(img0, img_avg, atol=1e-5)


def test_truncation_cutoff_only_touches_first_ws(tiny):
  g, v, z, c = tiny
  ws = g.apply(v, z, c, method='mapping')
  ws_cut = g.apply(v, z, c, 0.5, 2, method='mapping')
  np.testing.assert_array_equal(ws_cut[:, 2:], ws[:, 2:])
  w_avg = v['buffers']['mapping']['w_avg']
  np.testing.assert_allclose(ws_cut[:, :2], w_avg + 0.5 * (ws[:, :2] - w_avg), atol=1e-5)


def test_noise_modes(tiny):
  g, v, z, c = tiny
  const_a = g.apply(v, z, c, noise_mode='const')
  const_b = g.apply(v, z, c, noise_mode='const')
  np.testing.assert_array_equal(const_a, const_b)
  rand_a = g.apply(v, z, c, rngs={'noise': jax.random.key(5)})
  rand_b = g.apply(v, z, c, rngs={'noise': jax.random.key(6)})
  rand_a2 = g.apply(v, z, c, rngs={'noise': jax.random.key(5)})
  np.testing.assert_array_equal(rand_a, rand_a2)
  assert float(jnp.abs(rand_a - rand_b).max()) > 1e-3
  none = g.apply(v, z, c, noise_mode='none')
  assert float(jnp.abs(none - const_a).max()) > 1e-3
  with pytest.raises(ValueError, match='noise_mode'):
    g.apply(v, z, c, noise_mode='fixed')


def test_update_w_avg_follows_reference_rule(tiny):
  g, v, z, c = tiny
  _, state = g.apply(v, z, c, noise_mode='const', update_w_avg=True, mutable=['buffers'])
  ws = g.apply(v, z, c, method='mapping')
  old = v['buffers']['mapping']['w_avg']
  mean = ws[:, 0].mean(axis=0)
  np.testing.assert_allclose(state['buffers']['mapping']['w_avg'], mean + 0.995 * (old - mean),
                             atol=1e-5)
  _, same = g.apply(v, z, c, noise_mode='const', mutable=['buffers'])
  np.testing.assert_array_equal(same['buffers']['mapping']['w_avg'], old)


def test_style_mixing(tiny):
  g, v, z, c = tiny
  base = g.apply(v, z, c, noise_mode='const')
  unmixed = g.apply(v, z, c, noise_mode='const', style_mixing_prob=0.0)
  np.testing.assert_array_equal(base, unmixed)
  mixed = g.apply(v, z, c, noise_mode='const', style_mixing_prob=1.0,
                  rngs={'mixing': jax.random.key(7)})
  assert float(jnp.abs(mixed - base).max()) > 1e-4
  # The mixed ws: a prefix from z, the rest from a second z (one cutoff for the batch).
  ws = g.apply(v, z, c, method='mapping')
  ws_mixed = g.apply(v, ws, z, c, 1.0, method='mix_styles', rngs={'mixing': jax.random.key(7)})
  same = np.all(np.isclose(ws_mixed, ws), axis=(0, 2))
  cutoff = int(np.argmin(same))
  assert 1 <= cutoff < g.num_ws and same[:cutoff].all() and not same[cutoff:].any()


def test_path_lengths_match_per_sample_gradients(tiny):
  g, v, z, c = tiny
  ws = g.apply(v, z, c, method='mapping')
  key = jax.random.key(8)
  lengths, images = path_lengths(g, v, ws, key, noise_mode='const')
  assert lengths.shape == (4,) and images.shape == (4, 16, 16, 3)
  u = jax.random.normal(key, images.shape) / 16.0

  @jax.jit
  def one_sample_grad(w, mask):      # gradient of sample n's projection only
    return jax.grad(lambda w_: (g.apply(v, w_, noise_mode='const', method='synthesis') * u *
                                mask[:, None, None, None]).sum())(w)

  for n in (0, 3):
    grad = one_sample_grad(ws, jnp.eye(4)[n])
    np.testing.assert_allclose(lengths[n], jnp.sqrt((grad[n] ** 2).sum(axis=1).mean()),
                               rtol=1e-4)
    assert float(jnp.abs(grad[1]).max()) == 0.0     # samples do not interact
  # Differentiable w.r.t. the parameters (the regularizer backpropagates through it).
  grads = jax.jit(jax.grad(lambda p: path_lengths(g, {**v, 'params': p}, ws, key,
                                          noise_mode='const')[0].sum()))(v['params'])
  assert float(jnp.abs(grads['synthesis']['b16']['conv1']['weight']).max()) > 0


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_architectures_and_conditioning(architecture):
  g, v, z, c = make(architecture=architecture, c_dim=5)
  img = g.apply(v, z, c, noise_mode='const')
  assert img.shape == (4, 16, 16, 3) and bool(jnp.isfinite(img).all())
  other = g.apply(v, z, c + 1.0, noise_mode='const')
  assert float(jnp.abs(other - img).max()) > 1e-4    # the label matters
  has_skip = 'skip' in v['params']['synthesis']['b8']
  assert has_skip == (architecture == 'resnet')
  assert ('torgb' in v['params']['synthesis']['b8']) == (architecture == 'skip')


def test_bfloat16_agrees_with_float32():
  """bf16 in the 2 highest resolutions: max abs error <= 0.1 on images of std ~1 (8-bit mantissa,
  errors compound over ~6 layers); mean abs error <= 0.02."""
  g32, v, z, c = make(num_fp16_res=2)
  g16 = Generator(**{**TINY, 'num_fp16_res': 2, 'mixed_precision_dtype': jnp.bfloat16})
  a = g32.apply(v, z, c, noise_mode='const')
  b = g16.apply(v, z, c, noise_mode='const')
  assert b.dtype == jnp.float32
  err = jnp.abs(a - b)
  scale = float(a.std())
  assert float(err.max()) <= 0.1 * max(scale, 1.0), (float(err.max()), scale)
  assert float(err.mean()) <= 0.02 * max(scale, 1.0)
  assert float(err.max()) > 0                         # bf16 really ran


def test_construction_errors():
  with pytest.raises(ValueError, match='power of two'):
    Generator(**{**TINY, 'img_resolution': 48})
  with pytest.raises(ValueError, match='Unknown architecture'):
    Generator(**{**TINY, 'architecture': 'dense'})
  with pytest.raises(ValueError, match='channel_base'):
    Generator(**{**TINY, 'channel_base': 8})
  with pytest.raises(ValueError, match='img_channels'):
    Generator(**{**TINY, 'img_channels': 0})


def test_call_errors_name_the_expected_shape(tiny):
  g, v, z, c = tiny
  with pytest.raises(ValueError, match=r'z must be \[N, 32\]'):
    g.apply(v, z[:, :8], c, noise_mode='const')
  with pytest.raises(ValueError, match=r'ws must be \[N, 6, 32\]'):
    g.apply(v, jnp.zeros((2, 5, 32)), method='synthesis', noise_mode='const')


def test_every_parameter_gets_a_gradient_under_jit():
  """The training step differentiates through jit, style mixing and random noise: no parameter
  may be disconnected (buffers stay out of 'params')."""
  g, v, z, c = make(architecture='resnet', c_dim=2, img_resolution=8)

  @jax.jit
  def loss(params):
    img = g.apply({**v, 'params': params}, z, c, style_mixing_prob=0.5,
                  rngs={'noise': jax.random.key(1), 'mixing': jax.random.key(2)})
    return jnp.square(img).mean()

  grads = jax.grad(loss)(v['params'])
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(p) for p, x in flat if float(jnp.abs(x).max()) == 0.0]
  assert not dead
  assert 'w_avg' not in str(jax.tree_util.tree_structure(v['params']))
