"""DCGAN and SNGAN networks (models/dcgan.py, models/sngan.py), with and without a t-conditioned D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import dcgan, sngan

TINY = {'dcgan': 1 / 16, 'sngan': 1 / 8}
BATCH = 2


def make(family, width=None, t_conditioning=False):
  w = TINY[family] if width is None else width
  if family == 'dcgan':
    return dcgan.DCGANGenerator(width=w), dcgan.DCGANDiscriminator(width=w,
                                                                    t_conditioning=t_conditioning)
  return sngan.SNGANGenerator(width=w), sngan.SNGANDiscriminator(width=w,
                                                                  t_conditioning=t_conditioning)


def images(seed=0):
  return jax.random.uniform(jax.random.key(seed), (BATCH, 32, 32, 3), minval=-1, maxval=1)


def init_d(d, seed=0):
  return d.init(jax.random.key(seed), images(), t=jnp.zeros((BATCH,), jnp.int32), train=False)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


# Parameter counts derived by hand from the layer shapes ------------------------------------------

def conv(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def dense(cin, cout, bias=True):
  return cin * cout + (cout if bias else 0)


def dcgan_g_params(z=128, ch=512):
  return (dense(z, 16 * ch) + 2 * 16 * ch                      # l0 + bn0 (scale, bias)
          + conv(4, ch, ch // 2) + 2 * (ch // 2)                # dc1 + bn1
          + conv(4, ch // 2, ch // 4) + 2 * (ch // 4)           # dc2 + bn2
          + conv(4, ch // 4, ch // 8) + 2 * (ch // 8)           # dc3 + bn3
          + conv(3, ch // 8, 3))                                # dc4


def dcgan_d_params():
  convs = (conv(3, 3, 64) + conv(4, 64, 128) + conv(3, 128, 128) + conv(4, 128, 256)
           + conv(3, 256, 256) + conv(4, 256, 512) + conv(3, 512, 512))
  batchnorm_bias = 128 + 128 + 256 + 256 + 512 + 512           # BN without scale
  return convs + batchnorm_bias + dense(4 * 4 * 512, 1)


def sngan_g_params(z=128, ch=256):
  block = conv(3, ch, ch) * 2 + conv(1, ch, ch) + 2 * 2 * ch   # c1, c2, c_sc, b1, b2
  return dense(z, 16 * ch) + 3 * block + 2 * ch + conv(3, ch, 3)


def sngan_d_params(ch=128):
  optimized = conv(3, 3, ch) + conv(3, ch, ch) + conv(1, 3, ch)
  down = 2 * conv(3, ch, ch) + conv(1, ch, ch)
  plain = 2 * conv(3, ch, ch)
  return optimized + down + 2 * plain + dense(ch, 1, bias=False)


def t_embed_params(embed_dim, out):
  return dense(embed_dim, out) + dense(out, out)


def test_parameter_counts_match_the_layer_shapes():
  z = jnp.zeros((1, 128))
  x = jnp.zeros((1, 32, 32, 3))
  counts = {}
  for family in ('dcgan', 'sngan'):
    for cond in (False, True):
      g, d = make(family, width=1.0, t_conditioning=cond)
      counts[family, 'G'] = count(jax.eval_shape(
          lambda k, g=g: g.init(k, z, train=False), jax.random.key(0))['params'])
      counts[family, 'D', cond] = count(jax.eval_shape(
          lambda k, d=d: d.init(k, x, t=jnp.zeros((1,), jnp.int32), train=False),
          jax.random.key(0))['params'])
  assert counts['dcgan', 'G'] == dcgan_g_params() == 3_828_739
  assert counts['dcgan', 'D', False] == dcgan_d_params() == 5_862_657
  assert counts['dcgan', 'D', True] == dcgan_d_params() + t_embed_params(128, 512)
  assert counts['sngan', 'G'] == sngan_g_params() == 4_276_739
  assert counts['sngan', 'D', False] == sngan_d_params() == 1_053_824
  assert counts['sngan', 'D', True] == sngan_d_params() + t_embed_params(128, 128)


@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_output_shapes_and_ranges(family):
  g, d = make(family)
  z = jax.random.normal(jax.random.key(1), (BATCH, 128))
  gv = jax.jit(lambda k: g.init(k, z, train=False))(jax.random.key(0))
  img = jax.jit(lambda v: g.apply(v, z, train=False))(gv)
  assert img.shape == (BATCH, 32, 32, 3)
  assert float(jnp.abs(img).max()) <= 1.0
  logits = jax.jit(lambda v, x: d.apply(v, x, train=False))(init_d(d), img)
  assert logits.shape == (BATCH, 1) and logits.dtype == jnp.float32


@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_conditioned_d_uses_t_and_plain_d_ignores_it(family):
  x = images(3)
  _, d_plain = make(family)
  _, d_cond = make(family, t_conditioning=True)
  t0, t1 = jnp.array([0, 0]), jnp.array([400, 900])
  v = init_d(d_plain)
  plain = [d_plain.apply(v, x, t=t, train=False) for t in (t0, t1, None)]
  np.testing.assert_array_equal(plain[0], plain[1])
  np.testing.assert_array_equal(plain[0], plain[2])
  vc = init_d(d_cond)
  a, b = (d_cond.apply(vc, x, t=t, train=False) for t in (t0, t1))
  assert np.all(np.abs(np.asarray(a - b)) > 1e-3 * np.abs(np.asarray(a)))
  np.testing.assert_array_equal(a, d_cond.apply(vc, x, t=None, train=False))   # None = t 0


@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_both_ds_share_the_trunk(family):
  """Same key: the conditioned D's params are the t-less D's plus 't_embed'; with the embedding's
  output layer zeroed, both give the same logits."""
  x = images(4)
  _, d_plain = make(family)
  _, d_cond = make(family, t_conditioning=True)
  v, vc = init_d(d_plain), init_d(d_cond)
  trunk = {k: w for k, w in vc['params'].items() if k != 't_embed'}
  jax.tree_util.tree_map(np.testing.assert_array_equal, trunk, dict(v['params']))
  fc1 = vc['params']['t_embed']['fc1']
  params = dict(vc['params'])
  params['t_embed'] = dict(params['t_embed'], fc1=jax.tree_util.tree_map(jnp.zeros_like, fc1))
  out = d_cond.apply(dict(vc, params=params), x, t=jnp.array([5, 700]), train=False)
  np.testing.assert_allclose(out, d_plain.apply(v, x, train=False), rtol=1e-6, atol=1e-6)


@pytest.mark.slow   # half a minute each on a 2-core CPU; the networks are not in a family yet
@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_gradients_are_finite(family):
  g, d = make(family, t_conditioning=True)
  z = jax.random.normal(jax.random.key(2), (BATCH, 128))
  gv = g.init(jax.random.key(0), z, train=False)
  dv = init_d(d)
  t = jnp.array([10, 300])

  def loss(gp, dp, x_real):
    fake, _ = g.apply(dict(gv, params=gp), z, train=True, mutable=['batch_stats'])
    real_logit, _ = d.apply(dict(dv, params=dp), x_real, t=t, train=True, mutable=['batch_stats'])
    fake_logit, _ = d.apply(dict(dv, params=dp), fake, t=t, train=True, mutable=['batch_stats'])
    return jnp.sum(jax.nn.softplus(fake_logit) + jax.nn.softplus(-real_logit))

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(gv['params'], dv['params'], images(5))
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
  assert float(sum(jnp.abs(x).sum() for x in jax.tree_util.tree_leaves(grads[0]))) > 0


@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_train_mode_updates_batch_stats_and_eval_mode_does_not_need_them_mutable(family):
  g, d = make(family)
  z = jax.random.normal(jax.random.key(6), (BATCH, 128))
  gv = g.init(jax.random.key(0), z, train=False)
  _, new = g.apply(gv, z, train=True, mutable=['batch_stats'])
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), gv['batch_stats'],
                                   new['batch_stats'])
  assert all(jax.tree_util.tree_leaves(changed))
  dv = init_d(d)
  _, new_d = d.apply(dv, images(7), train=True, mutable=['batch_stats'])
  changed = [bool(jnp.any(a != b)) for a, b in zip(jax.tree_util.tree_leaves(dv['batch_stats']),
                                                   jax.tree_util.tree_leaves(new_d['batch_stats']))]
  assert any(changed)
  # Eval mode reads the statistics only, and the same input gives the same output.
  np.testing.assert_array_equal(g.apply(gv, z, train=False), g.apply(gv, z, train=False))


def test_sngan_power_iteration_finds_the_largest_singular_value():
  """Train-mode calls run the power iteration on the kernel as a [kh * kw * in, out] matrix (the
  same singular values as torch's [out, -1]); sigma converges to the largest one (made 3x the
  next, so that 20 steps converge)."""
  _, d = make('sngan')
  v = init_d(d)
  kernel = np.asarray(v['params']['block3']['c1']['kernel'])
  u, s, vt = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), full_matrices=False)
  s[0] = 3 * s[1]
  kernel = (u * s @ vt).reshape(kernel.shape)
  params = jax.tree_util.tree_map(lambda x: x, v['params'])
  params['block3']['c1']['kernel'] = jnp.asarray(kernel)
  v = dict(v, params=params)
  for _ in range(20):
    _, upd = d.apply(v, images(8), train=True, mutable=['batch_stats'])
    v = dict(v, batch_stats=upd['batch_stats'])
  largest = s[0]
  sigma = float(v['batch_stats']['block3']['c1_sn']['c1/kernel/sigma'])
  assert sigma == pytest.approx(largest, rel=1e-3)


@pytest.mark.parametrize('family', ['dcgan', 'sngan'])
def test_bad_inputs_raise_clear_errors(family):
  g, d = make(family)
  with pytest.raises(ValueError, match='expected z'):
    g.init(jax.random.key(0), jnp.zeros((2, 100)), train=False)
  with pytest.raises(ValueError, match='unconditional'):
    g.init(jax.random.key(0), jnp.zeros((2, 128)), jnp.ones((2, 10)), train=False)
  with pytest.raises(ValueError, match='square NHWC'):
    d.init(jax.random.key(0), jnp.zeros((2, 30, 32, 3)), train=False)
