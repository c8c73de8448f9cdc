"""The CPU convolution forms (dgan_jax/models/conv.py) against lax.conv_general_dilated.

Values, first derivatives and R1-style second derivatives must agree: the polyphase and
custom-VJP forms only change how XLA:CPU runs the work, never the result.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import conv


def _cases():
  for n, k, s, p0, p1 in itertools.product([4, 5], [1, 2, 3, 4], [2, 3], [0, 1, 3], [0, 2]):
    yield n, (k, max(1, k - 1)), s, p0, p1     # rectangular kernels catch swapped axes


@pytest.mark.parametrize('n,k,s,p0,p1', list(_cases()))
def test_transposed_and_strided_match_native(n, k, s, p0, p1):
  rng = np.random.default_rng(n * 100 + k[0] * 10 + s)
  x = jnp.asarray(rng.standard_normal((2, n, n + 1, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal(k + (3, 5)), jnp.float32)
  pads = ((p0, p1), (p1, p0))
  expected = conv._native_conv(x, w, 1, pads, (s, s))
  out = conv.transposed_conv(x, w, pads, s)
  assert out.shape == expected.shape
  np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-5)
  if n + p0 + p1 >= max(k):
    expected = conv._native_conv(x, w, s, pads)
    out = conv.conv2d(x, w, stride=s, padding=pads)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-5)


def _r1_grads(fn, x, w):
  """Gradients of |d sum(tanh(fn(x, w))) / dx|^2 with respect to x and w (R1's shape)."""
  def penalty(x, w):
    gx = jax.grad(lambda x: jnp.sum(jnp.tanh(fn(x, w))))(x)
    return jnp.sum(jnp.square(gx))
  return jax.grad(penalty, argnums=(0, 1))(x, w)


@pytest.fixture(params=['native', 'taps', 'loop'])
def weight_grad_form(request, monkeypatch):
  """Every form of `_weight_grad_conv`: XLA's convolution or per-tap products (which it picks for
  kernels of >= 2048 x 2048 channels), unrolled over vmapped sub-batches, and the loop of per-tap
  products it uses for small work (the default at these test sizes). The thresholds are lowered
  here so that small tests reach the unrolled forms."""
  if request.param != 'loop':
    monkeypatch.setattr(conv, '_UNROLL_MIN_MACS', 0)
  if request.param == 'taps':
    monkeypatch.setattr(conv, '_TAPS_MIN_CHANNEL_PAIRS', 1)
  return request.param


@pytest.mark.parametrize('kernel', [(1, 1), (2, 2), (3, 3), (2, 1), (3, 2)])
def test_valid_conv_derivatives_match_native(kernel, weight_grad_form):
  rng = np.random.default_rng(sum(kernel))
  x = jnp.asarray(rng.standard_normal((3, 6, 7, 4)), jnp.float32)
  w = jnp.asarray(rng.standard_normal(kernel + (4, 5)) * 0.3, jnp.float32)
  native = lambda x, w: conv._native_conv(x, w)
  np.testing.assert_allclose(conv.valid_conv(x, w), native(x, w), atol=1e-5)
  first = lambda fn: jax.grad(lambda x, w: jnp.sum(jnp.sin(fn(x, w))), argnums=(0, 1))(x, w)
  for ours, ref in zip(first(conv.valid_conv), first(native)):
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)
  for ours, ref in zip(_r1_grads(conv.valid_conv, x, w), _r1_grads(native, x, w)):
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('up,stride', [(2, 1), (1, 2)])
def test_resampling_conv_second_derivatives_match_native(up, stride):
  rng = np.random.default_rng(up)
  x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)) * 0.3, jnp.float32)
  pads = ((2, 2), (2, 2)) if up > 1 else ((1, 1), (1, 1))
  ours = lambda x, w: conv.conv2d(x, w, stride, pads, (up, up))
  native = lambda x, w: conv._native_conv(x, w, stride, pads, (up, up))
  for a, b in zip(_r1_grads(ours, x, w), _r1_grads(native, x, w)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_cpu_uses_polyphase_and_no_window_reversal():
  """On the CPU, R1 through a strided 3x3 convolution compiles without the window-reversed or
  lhs-dilated convolutions that leave XLA:CPU's fast path."""
  assert conv.use_polyphase()
  x = jnp.zeros((2, 8, 8, 4))
  w = jnp.zeros((3, 3, 4, 4))
  fn = jax.jit(lambda x, w: _r1_grads(lambda x, w: conv.conv2d(x, w, 2), x, w))
  hlo = fn.lower(x, w).compile().as_text()
  convs = [line for line in hlo.splitlines() if 'convolution(' in line]
  assert convs
  assert not [line for line in convs if 'reversal' in line or 'lhs_dilate' in line], convs


def test_strided_and_dilated_together_is_an_error():
  with pytest.raises(ValueError, match='either strided or lhs-dilated'):
    conv.conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), 2, lhs_dilation=(2, 2))


def test_r1_under_shard_map_matches_single_device():
  """A replicated kernel and a sharded batch (the train step's layout): the custom-VJP
  convolutions' gradients are summed over devices like the native ones."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ('data',),
                           axis_types=(jax.sharding.AxisType.Auto,))
  P = jax.sharding.PartitionSpec
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.standard_normal((8, 6, 6, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)) * 0.3, jnp.float32)

  def loss(w, x):
    def penalty(x):
      gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv.conv2d(x, w, 2, ((1, 1), (1, 1))))))(x)
      return jnp.sum(jnp.square(gx))
    return penalty(x)

  expected = jax.grad(loss)(w, x)
  sharded = jax.jit(jax.shard_map(
      lambda w, x: jax.grad(lambda w: jax.lax.psum(loss(w, x), 'data'))(w),
      mesh=mesh, in_specs=(P(), P('data')), out_specs=P()))
  np.testing.assert_allclose(sharded(w, x), expected, atol=1e-4, rtol=1e-4)


def _native_depthwise(stride, pads):
  return lambda x, w: jax.lax.conv_general_dilated(
      x, w, (stride, stride), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=x.shape[3], precision='highest')


@pytest.mark.parametrize('k,stride,pads', [(3, 1, ((1, 1), (1, 1))), (3, 2, ((0, 1), (0, 1))),
                                           (5, 2, ((1, 2), (2, 1))), ((5, 3), 1, ((2, 2), (1, 1)))])
def test_depthwise_matches_grouped_native(k, stride, pads):
  """The shifted-slice depthwise form: values, first derivatives (x and w) and R1's second
  derivatives equal the feature-grouped native convolution's (TF 'same' pads, rectangular kernels)."""
  k = k if isinstance(k, tuple) else (k, k)
  rng = np.random.default_rng(k[0] * 10 + stride)
  x = jnp.asarray(rng.standard_normal((2, 9, 8, 5)), jnp.float32)
  w = jnp.asarray(rng.standard_normal(k + (1, 5)) * 0.3, jnp.float32)
  ours = lambda x, w: conv.depthwise_conv2d(x, w, stride, pads)
  native = _native_depthwise(stride, pads)
  np.testing.assert_allclose(ours(x, w), native(x, w), atol=1e-5)
  first = lambda fn: jax.grad(lambda x, w: jnp.sum(jnp.sin(fn(x, w))), argnums=(0, 1))(x, w)
  for a, b in zip(first(ours), first(native)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
  for a, b in zip(_r1_grads(ours, x, w), _r1_grads(native, x, w)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_depthwise_rejects_non_depthwise_weights():
  with pytest.raises(ValueError, match=r'\[kh, kw, 1, 4\]'):
    conv.depthwise_conv2d(jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 2, 4)))


def test_vmapped_weight_gradients_are_dense_and_exact(weight_grad_form):
  """The step vmaps its networks over sub-batches with shared weights: the weight gradients of
  the custom-VJP forms must equal the native ones and compile without a feature-grouped
  convolution (XLA:CPU's slow path) for the 'same', strided, transposed and depthwise forms: one
  plain weight-gradient convolution, or per-tap products, per sub-batch, unrolled (a convolution
  in a loop body runs up to 30x slower), or a loop of per-tap products for small work."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((2, 3, 8, 8, 4)), jnp.float32)   # [sub-batches, N, H, W, C]
  w = jnp.asarray(rng.standard_normal((3, 3, 4, 4)) * 0.3, jnp.float32)
  wd = jnp.asarray(rng.standard_normal((3, 3, 1, 4)) * 0.3, jnp.float32)
  pads = ((1, 1), (1, 1))
  forms = {
      'same': (lambda x, w: conv.conv2d(x, w, 1, pads), lambda x, w: conv._native_conv(x, w, 1, pads), w),
      'strided': (lambda x, w: conv.conv2d(x, w, 2, pads), lambda x, w: conv._native_conv(x, w, 2, pads), w),
      'transposed': (lambda x, w: conv.conv2d(x, w, 1, pads, (2, 2)),
                     lambda x, w: conv._native_conv(x, w, 1, pads, (2, 2)), w),
      'depthwise': (lambda x, w: conv.depthwise_conv2d(x, w, 2, pads), _native_depthwise(2, pads), wd),
  }
  for name, (ours, native, kernel) in forms.items():
    grad = lambda fn: jax.jit(jax.grad(
        lambda k, x: jnp.sum(jax.vmap(lambda xi: jnp.sin(fn(xi, k)))(x))))
    np.testing.assert_allclose(grad(ours)(kernel, x), grad(native)(kernel, x), atol=1e-4,
                               rtol=1e-4, err_msg=name)
    hlo = grad(ours).lower(kernel, x).compile().as_text()
    grouped = [line for line in hlo.splitlines()
               if 'convolution(' in line and 'feature_group_count' in line]
    assert not grouped, (name, grouped)
    if name != 'depthwise':
      assert (' while(' in hlo) == (weight_grad_form == 'loop'), name
    if name == 'same':
      # The weight gradient of a 'same' conv as XLA's convolution has an image-sized (8x8)
      # window, once per sub-batch; per tap there is none.
      windows = [line for line in hlo.splitlines() if 'convolution(' in line and 'size=8x8' in line]
      assert len(windows) == (2 if weight_grad_form == 'native' else 0), windows
