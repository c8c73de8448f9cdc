"""upfirdn2d and resampling convolutions against direct numpy implementations."""
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import upfirdn2d as fir


def np_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0, flip_filter=False):
  """Loop-based reference: zero insertion, pad/crop, FIR as a true convolution, decimate."""
  n, h, w, c = x.shape
  z = np.zeros((n, h * up, w * up, c), np.float64)
  z[:, ::up, ::up, :] = x
  px0, px1, py0, py1 = pad
  z = np.pad(z, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
  z = z[:, max(-py0, 0):z.shape[1] - max(-py1, 0), max(-px0, 0):z.shape[2] - max(-px1, 0)]
  f = np.asarray(f, np.float64) * gain
  fh, fw = f.shape
  out_h, out_w = z.shape[1] - fh + 1, z.shape[2] - fw + 1
  out = np.zeros((n, out_h, out_w, c))
  for i in range(out_h):
    for j in range(out_w):
      for a in range(fh):
        for b in range(fw):
          tap = f[a, b] if flip_filter else f[fh - 1 - a, fw - 1 - b]
          out[:, i, j, :] += z[:, i + a, j + b, :] * tap
  return out[:, ::down, ::down, :]


def np_correlate(x, w, pad):
  """x [N,H,W,I], w [kh,kw,I,O], symmetric zero padding, stride 1 correlation."""
  kh, kw = w.shape[:2]
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  out = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
  for a in range(kh):
    for b in range(kw):
      out += np.einsum('nhwi,io->nhwo', x[:, a:a + out_h, b:b + out_w, :], w[a, b])
  return out


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.mark.parametrize('up,down,pad,gain,flip', [
    (1, 1, (0, 0, 0, 0), 1.0, False),
    (2, 1, (2, 1, 2, 1), 4.0, False),
    (1, 2, (1, 1, 1, 1), 1.0, False),
    (1, 1, (2, 2, 2, 2), 1.0, False),
    (2, 1, (1, -1, 0, 2), 2.5, True),
    (3, 2, (-1, 3, 2, -2), 1.0, False),
])
def test_upfirdn2d_matches_numpy(rng, up, down, pad, gain, flip):
  x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
  f = rng.standard_normal((4, 3)).astype(np.float32)   # asymmetric: catches flips and axes
  out = fir.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=pad, gain=gain,
                      flip_filter=flip)
  np.testing.assert_allclose(np.asarray(out),
                             np_upfirdn2d(x, f, up, down, pad, gain, flip), atol=1e-4)


@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2)])
def test_upfirdn2d_separable_filter_matches_numpy(rng, up, down):
  """setup_filter's outer-product filter takes the per-axis path; same result as the 2-D loop."""
  x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
  f = fir.setup_filter((1, 2, 5, 1))                       # asymmetric taps: catches flips
  out = fir.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=(2, 1, 1, 2), gain=2.0)
  np.testing.assert_allclose(out, np_upfirdn2d(x, f, up, down, (2, 1, 1, 2), 2.0), atol=1e-5)


def test_setup_filter_is_normalised_outer_product():
  f = fir.setup_filter((1, 3, 3, 1))
  np.testing.assert_allclose(f, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0)


def test_upsample_and_downsample_keep_a_constant_image_constant():
  x = jnp.full((1, 8, 8, 2), 3.0)
  f = fir.setup_filter()
  up = np.asarray(fir.upsample2d(x, f))
  down = np.asarray(fir.downsample2d(x, f))
  assert up.shape == (1, 16, 16, 2) and down.shape == (1, 4, 4, 2)
  np.testing.assert_allclose(up[:, 2:-2, 2:-2], 3.0, rtol=1e-6)
  np.testing.assert_allclose(down[:, 1:-1, 1:-1], 3.0, rtol=1e-6)


def test_conv_down2_is_fir_then_strided_correlation(rng):
  x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
  w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
  f = fir.setup_filter()
  out = fir.conv2d_resample(jnp.asarray(x), jnp.asarray(w), f, down=2, padding=1)
  blurred = np_upfirdn2d(x, f, pad=(2, 2, 2, 2))
  expected = np_correlate(blurred, w, 0)[:, ::2, ::2]
  assert out.shape == (2, 4, 4, 5)
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)


def test_conv_up2_is_zero_insertion_true_convolution_then_blur(rng):
  x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
  w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
  f = fir.setup_filter()
  out = fir.conv2d_resample(jnp.asarray(x), jnp.asarray(w), f, up=2, padding=1,
                            flip_weight=False)
  stuffed = np.zeros((2, 8, 8, 3))
  stuffed[:, ::2, ::2] = x
  # Transposed conv = full true convolution of the dilated input: 2H - 1 + 2 = 2H + 1 outputs
  # (the trailing stuffed zero only adds a last, dropped row/column).
  conv_t = np_correlate(stuffed, w[::-1, ::-1], 2)[:, :9, :9]
  expected = np_upfirdn2d(conv_t, f, pad=(1, 1, 1, 1), gain=4.0)
  assert out.shape == (2, 8, 8, 5)
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)


def test_conv_same_padding_is_correlation(rng):
  x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
  w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
  out = fir.conv2d_resample(jnp.asarray(x), jnp.asarray(w), padding=1)
  np.testing.assert_allclose(np.asarray(out), np_correlate(x, w, 1), atol=1e-4)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='rank 4'):
    fir.upfirdn2d(jnp.zeros((4, 4, 3)), fir.setup_filter())
  with pytest.raises(ValueError, match='padding'):
    fir.upfirdn2d(jnp.zeros((1, 4, 4, 3)), fir.setup_filter(), padding=(1, 2, 3))
