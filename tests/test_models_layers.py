"""Equalized-lr layers, modulated convolution, minibatch std, bias_act."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import layers
from dgan_jax.models import upfirdn2d as fir


def per_sample_modconv(x, weight, styles, up, demodulate=True):
  """Explicit reference: build each sample's modulated (+demodulated) kernel and convolve."""
  outs = []
  for n in range(x.shape[0]):
    w = weight * styles[n][None, None, :, None]
    if demodulate:
      w = w / np.sqrt((w ** 2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
    outs.append(fir.conv2d_resample(jnp.asarray(x[n:n + 1]), jnp.asarray(w), layers.RESAMPLE_FILTER,
                                    up=up, padding=weight.shape[0] // 2, flip_weight=(up == 1)))
  return np.concatenate([np.asarray(o) for o in outs])


@pytest.mark.parametrize('up,demodulate', [(1, True), (2, True), (1, False)])
def test_modulated_conv_matches_explicit_per_sample_conv(up, demodulate):
  rng = np.random.default_rng(1)
  x = rng.standard_normal((3, 6, 6, 4)).astype(np.float32)
  weight = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
  styles = rng.standard_normal((3, 4)).astype(np.float32)
  out = layers.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight), jnp.asarray(styles), up=up,
                                padding=1, resample_filter=layers.RESAMPLE_FILTER,
                                demodulate=demodulate, flip_weight=(up == 1))
  expected = per_sample_modconv(x, weight, styles, up, demodulate)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-4)


def test_demodulation_keeps_unit_output_variance():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((8, 16, 16, 128)).astype(np.float32)
  weight = rng.standard_normal((3, 3, 128, 64)).astype(np.float32) * 7.0
  styles = rng.uniform(0.2, 3.0, (8, 128)).astype(np.float32)
  out = np.asarray(layers.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight),
                                           jnp.asarray(styles), padding=1))
  interior = out[:, 1:-1, 1:-1, :]                    # zero padding lowers the border variance
  assert abs(interior.var() - 1.0) < 0.05
  assert abs(interior.mean()) < 0.05


def test_fully_connected_applies_gains_at_run_time():
  fc = layers.FullyConnectedLayer(8, 3, lr_multiplier=0.01, bias_init=0.5)
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 8)), jnp.float32)
  params = fc.init(jax.random.key(0), x)['params']
  assert params['weight'].shape == (8, 3)
  assert 50 < float(params['weight'].std()) < 200     # raw init N(0, 1) / lr_multiplier
  np.testing.assert_allclose(params['bias'], 0.5)
  expected = x @ (params['weight'] * 0.01 / np.sqrt(8)) + params['bias'] * 0.01
  np.testing.assert_allclose(fc.apply({'params': params}, x), expected, rtol=1e-5, atol=1e-6)


def test_conv_layer_gain_and_clamp():
  conv = layers.Conv2dLayer(2, 3, 3, activation='lrelu', conv_clamp=0.5)
  x = jnp.asarray(np.random.default_rng(4).standard_normal((1, 5, 5, 2)) * 10, jnp.float32)
  params = conv.init(jax.random.key(0), x)['params']
  out = np.asarray(conv.apply({'params': params}, x))
  assert np.abs(out).max() <= 0.5 + 1e-6 and np.isclose(np.abs(out).max(), 0.5)
  out_gain = np.asarray(conv.apply({'params': params}, x, gain=2.0))   # clamp scales with gain
  assert np.isclose(np.abs(out_gain).max(), 1.0)
  raw = fir.conv2d_resample(x, params['weight'] / np.sqrt(2 * 9), padding=1)
  unclamped = np.where(raw >= 0, raw, 0.2 * raw) * np.sqrt(2)
  mask = np.abs(unclamped) < 0.5
  np.testing.assert_allclose(out[mask], unclamped[mask], rtol=1e-5, atol=1e-6)


def test_bias_act_lrelu_gain_clamp():
  x = jnp.asarray([-2.0, -0.5, 0.5, 300.0])
  out = layers.bias_act(x, jnp.asarray([1.0] * 4), 'lrelu', clamp=256)
  np.testing.assert_allclose(out, [-0.2 * np.sqrt(2), 0.5 * np.sqrt(2), 1.5 * np.sqrt(2), 256],
                             rtol=1e-6)


def test_normalize_2nd_moment():
  x = jnp.asarray(np.random.default_rng(5).standard_normal((4, 16)) * 3, jnp.float32)
  y = np.asarray(layers.normalize_2nd_moment(x))
  np.testing.assert_allclose((y ** 2).mean(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('group_size,num_channels', [(4, 1), (2, 2), (32, 1), (None, 1)])
def test_minibatch_std_groups_strided_samples(group_size, num_channels):
  rng = np.random.default_rng(6)
  x = rng.standard_normal((8, 3, 3, 4)).astype(np.float32)
  out = np.asarray(layers.MinibatchStdLayer(group_size, num_channels).apply({}, jnp.asarray(x)))
  g = min(group_size or 8, 8)
  n = 8 // g
  assert out.shape == (8, 3, 3, 4 + num_channels)
  np.testing.assert_array_equal(out[..., :4], x)
  for k in range(8):
    members = [k % n + j * n for j in range(g)]      # samples k%n, k%n + N/G, ...
    grp = x[members].reshape(g, 3, 3, num_channels, 4 // num_channels)
    std = np.sqrt(grp.var(axis=0) + 1e-8).mean(axis=(0, 1, 3))
    np.testing.assert_allclose(out[k, 0, 0, 4:], std, rtol=1e-5)
    np.testing.assert_allclose(out[k, 2, 1, 4:], std, rtol=1e-5)


def test_minibatch_std_rejects_indivisible_batch():
  with pytest.raises(ValueError, match='divisible by the group size'):
    layers.MinibatchStdLayer(4).apply({}, jnp.zeros((6, 2, 2, 3)))


def test_layers_reject_bad_construction_and_channel_mismatch():
  with pytest.raises(ValueError, match='Unknown activation'):
    layers.Conv2dLayer(2, 3, 3, activation='gelu')
  conv = layers.Conv2dLayer(2, 3, 3)
  with pytest.raises(ValueError, match='expected 2 input channels'):
    conv.init(jax.random.key(0), jnp.zeros((1, 4, 4, 5)))


def test_lrelu_gradient_at_zero_is_alpha_times_gain():
  """torch's leaky_relu and the reference's CUDA bias_act use the negative slope at exactly 0."""
  x = jnp.asarray([-0.5, 1.0, 0.0, 2.0, -3.0])
  b = jnp.asarray([0.5, -1.0, 0.0, 0.0, 0.0])          # x + b = 0 for the first three
  grad = jax.grad(lambda v: layers.bias_act(v, b, 'lrelu').sum())(x)
  np.testing.assert_allclose(grad, np.sqrt(2) * np.asarray([0.2, 0.2, 0.2, 1.0, 0.2]), rtol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda v: layers.leaky_relu(v, 0.1))(0.0), 0.1)


def test_lrelu_gradient_matches_reference_bias_act(reference_networks):
  torch = pytest.importorskip('torch')
  x = np.asarray([[-1.0, -1e-3, 0.0, 0.0, 1e-3, 1.0]], np.float32)
  b = np.asarray([0.0, 0.0, 0.0, 0.5, 0.0, -1.0], np.float32)      # zero pre-activations included
  tx = torch.from_numpy(x).requires_grad_(True)
  out = reference_networks.bias_act.bias_act(tx, torch.from_numpy(b), act='lrelu', clamp=256)
  out.sum().backward()
  grad = jax.grad(lambda v: layers.bias_act(v, jnp.asarray(b), 'lrelu', clamp=256).sum())(jnp.asarray(x))
  np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-6)
  np.testing.assert_allclose(layers.bias_act(jnp.asarray(x), jnp.asarray(b), 'lrelu', clamp=256),
                             out.detach().numpy(), rtol=1e-6)


def test_toy_mlp_uses_the_same_leaky_relu():
  from dgan_jax import toy  # pylint: disable=import-outside-toplevel
  mlp = toy.MLP(width=2, depth=1, out_dim=1)
  params = mlp.init(jax.random.key(0), jnp.zeros((1, 3)))['params']
  params = jax.tree_util.tree_map(jnp.zeros_like, params)           # pre-activations exactly 0
  params['out']['kernel'] = jnp.ones((2, 1))
  grad = jax.grad(lambda p: mlp.apply({'params': p}, jnp.ones((1, 3))).sum())(params)
  np.testing.assert_allclose(grad['fc0']['bias'], [0.2, 0.2])       # torch's nn.LeakyReLU(0.2)
