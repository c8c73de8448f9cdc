"""Discriminator: t conditioning, embeddings, architectures, minibatch-std batch semantics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models.discriminator import (Discriminator, apply_in_sub_batches,
                                           timestep_features)

TINY = dict(img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
            conv_clamp=256, mbstd_group_size=4, mapping_layers=2)


def make(**overrides):
  d = Discriminator(**{**TINY, **overrides})
  img = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
  c = jax.random.normal(jax.random.key(2), (8, d.c_dim))
  t = jnp.zeros((8,), jnp.int32)
  return d, d.init(jax.random.key(0), img, c, t), img, c


def with_embed_bias(variables, value=0.3):
  """The reference inits the t-embedding bias at 0; training moves it (see docs)."""
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + value if [k.key for k in p[-3:]] == ['mapping', 'embed', 'bias'] else v,
      variables['params'])
  return {'params': params}


@pytest.fixture(scope='module')
def tiny():
  return make()


def test_output_shape_and_dtype(tiny):
  d, v, img, c = tiny
  logits = d.apply(v, img, c, jnp.arange(8))
  assert logits.shape == (8, 1) and logits.dtype == jnp.float32
  assert v['params']['mapping']['embed']['weight'].shape == (1, 32)   # c_dim 0 + t_dim 1


def test_output_changes_with_t(tiny):
  d, v, img, c = tiny
  clean = d.apply(v, img, c, jnp.zeros(8, jnp.int32))
  noisy = d.apply(v, img, c, jnp.full(8, 500))
  assert float(jnp.abs(clean - noisy).min()) > 1e-5
  # Reference quirk at init: unconditional t = 0 embeds to 0, so cmap = 0 and the logit is 0.
  np.testing.assert_array_equal(clean, 0.0)
  # At init (embed bias 0) every t > 0 gives the same normalised embedding (reference
  # behaviour); once the bias is non-zero, different t > 0 give different logits.
  np.testing.assert_allclose(d.apply(v, img, c, jnp.full(8, 10)), noisy, rtol=1e-5, atol=1e-6)
  vb = with_embed_bias(v)
  a = d.apply(vb, img, c, jnp.full(8, 10))
  b = d.apply(vb, img, c, jnp.full(8, 500))
  assert float(jnp.abs(a - b).min()) > 1e-5


@pytest.mark.parametrize('kind', ['scaled', 'sinusoidal'])
def test_optional_t_embeddings(kind):
  d, v, img, c = make(t_embedding=kind, t_max=1000.0, t_embed_dim=16)
  width = 16 if kind == 'sinusoidal' else 1
  assert v['params']['mapping']['embed']['weight'].shape == (width, 32)
  vb = with_embed_bias(v)
  a = d.apply(vb, img, c, jnp.full(8, 10))
  b = d.apply(vb, img, c, jnp.full(8, 500))
  assert float(jnp.abs(a - b).min()) > 1e-5


def test_timestep_features_values():
  t = jnp.asarray([0, 10, 1000])
  np.testing.assert_array_equal(timestep_features(t, 'raw'), [[0.0], [10.0], [1000.0]])
  np.testing.assert_allclose(timestep_features(t, 'scaled', t_max=1000), [[0.0], [0.01], [1.0]])
  emb = np.asarray(timestep_features(t, 'sinusoidal', dim=8))
  assert emb.shape == (3, 8)
  np.testing.assert_allclose(emb[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
  np.testing.assert_allclose(emb[1, 0], np.sin(10.0), rtol=1e-5)     # frequency 1
  np.testing.assert_allclose(emb[1, 5], np.cos(10.0 * 10000 ** -0.25), rtol=1e-5)


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_architectures_and_labels(architecture):
  d, v, img, c = make(architecture=architecture, c_dim=3)
  t = jnp.arange(8)
  logits = d.apply(v, img, c, t)
  assert logits.shape == (8, 1) and bool(jnp.isfinite(logits).all())
  assert float(jnp.abs(d.apply(v, img, c + 1.0, t) - logits).max()) > 1e-5
  block = v['params']['b8']
  assert ('skip' in block) == (architecture == 'resnet')
  assert ('fromrgb' in block) == (architecture == 'skip')
  assert ('fromrgb' in v['params']['b4']) == (architecture == 'skip')


def test_minibatch_std_uses_the_batch_it_is_called_on(tiny):
  """Group = min(mbstd_group_size, N) over exactly the call's batch: vmapping over sub-batches
  (the training loop's per-reference-GPU calls) equals calling each sub-batch separately."""
  d, v, img, c = tiny
  t = jnp.arange(8) + 1      # t = 0 with c_dim = 0 gives cmap = 0, i.e. logit 0, at init
  whole = d.apply(v, img, c, t)
  split = apply_in_sub_batches(d, v, img, c, t, batch_gpu=4)
  np.testing.assert_allclose(split[:4], d.apply(v, img[:4], c[:4], t[:4]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(split[4:], d.apply(v, img[4:], c[4:], t[4:]), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='multiple of batch_gpu'):
    apply_in_sub_batches(d, v, img, c, t, batch_gpu=3)
  # With group 4 over 8 samples the groups interleave (j, j + 2, ...) and differ from halves.
  assert float(jnp.abs(whole - split).max()) > 1e-6
  # Changing one sample changes the logits of its group mates only.
  img2 = img.at[0].add(1.0)
  delta = jnp.abs(d.apply(v, img2, c, t) - whole)[:, 0]
  assert bool((delta[0::2] > 0).all()) and float(delta[1::2].max()) == 0.0


def test_bfloat16_agrees_with_float32(tiny):
  """bf16 blocks (16x16 and 8x8): logits within 0.05 + 5% of the float32 value."""
  d, v, img, c = tiny
  d16 = Discriminator(**{**TINY, 'num_fp16_res': 2, 'mixed_precision_dtype': jnp.bfloat16})
  t = jnp.arange(8) * 100
  a = d.apply(v, img, c, t)
  b = d16.apply(v, img, c, t)
  assert b.dtype == jnp.float32
  np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05)
  assert float(jnp.abs(a - b).max()) > 0


def test_construction_and_call_errors(tiny):
  with pytest.raises(ValueError, match='power of two'):
    Discriminator(**{**TINY, 'img_resolution': 24})
  with pytest.raises(ValueError, match='>= 8'):
    Discriminator(**{**TINY, 'img_resolution': 4})
  with pytest.raises(ValueError, match='Unknown architecture'):
    Discriminator(**{**TINY, 'architecture': 'unet'})
  with pytest.raises(ValueError, match='Unknown t_embedding'):
    Discriminator(**{**TINY, 't_embedding': 'learned'})
  d, v, img, c = tiny
  with pytest.raises(ValueError, match=r'img must be NHWC \[N, 16, 16, 3\]'):
    d.apply(v, img[..., :1], c, jnp.arange(8))
  with pytest.raises(ValueError, match=r'c must be \[N, 0\]'):
    d.apply(v, img, jnp.zeros((8, 2)), jnp.arange(8))
  with pytest.raises(ValueError, match='t must be the integer timestep'):
    d.apply(v, img, c, jnp.arange(4))


def test_r1_style_image_gradient_is_finite_and_per_sample(tiny):
  d, v, img, c = tiny
  t = jnp.arange(8) + 1
  grad = jax.jit(jax.grad(lambda x: d.apply(v, x, c, t).sum()))(img)
  assert grad.shape == img.shape and bool(jnp.isfinite(grad).all())
  assert float(jnp.abs(grad).sum(axis=(1, 2, 3)).min()) > 0
