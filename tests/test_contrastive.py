"""InsGen's contrastive head against the reference's recorded outputs (tests/fixtures/insgen_reference.npz,
written by tests/fixtures/make_insgen_reference.py with the authors' CLHead): loss, gradients,
momentum update, queue ring buffer (incl. the pointer wrap-around and update_q)."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.models import contrastive

FIXTURE = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'insgen_reference.npz'
C = 16


def mlp_params(data, prefix):
  """torch Linear weights [out, in] -> flax Dense kernels [in, out]."""
  return {'fc0': {'kernel': data[f'{prefix}.0.weight'].T, 'bias': data[f'{prefix}.0.bias']},
          'fc1': {'kernel': data[f'{prefix}.2.weight'].T, 'bias': data[f'{prefix}.2.bias']}}


def nhwc(x):
  return jnp.asarray(x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize('case', range(3))
def test_head_equals_recorded_reference(case):
  data = np.load(FIXTURE)
  d = {k[len(f'case{case}/'):]: data[k] for k in data.files if k.startswith(f'case{case}/')}
  params = mlp_params(d, 'before/mlp')
  momentum = contrastive.momentum_update(mlp_params(d, 'before/momentum_mlp'), params, 0.999)
  queue = jnp.asarray(d['before/queue'].T)
  ptr = jnp.asarray(int(d['before/queue_ptr'][0]), jnp.int32)

  def loss_fn(p, im_q):
    q = contrastive.embed(p, im_q, C)
    k = contrastive.embed(momentum, nhwc(d['im_k']), C)
    return contrastive.info_nce(q, k, queue, 0.2), k

  (loss, k), (grads, grad_q) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
      params, nhwc(d['im_q']))
  np.testing.assert_allclose(float(loss), float(d['loss']), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grads['fc0']['kernel'], d['grad/0.weight'].T, atol=1e-5)
  np.testing.assert_allclose(grads['fc1']['bias'], d['grad/2.bias'], atol=1e-5)
  np.testing.assert_allclose(np.asarray(grad_q).transpose(0, 3, 1, 2), d['grad_im_q'], atol=1e-6)
  expected_momentum = mlp_params(d, 'after/momentum_mlp')
  for a, b in zip(jax.tree.leaves(momentum), jax.tree.leaves(expected_momentum)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  keys = contrastive.embed(momentum, nhwc(d['im_q']), C) if d['update_q'] else k
  new_queue, new_ptr = contrastive.enqueue(queue, ptr, keys)
  np.testing.assert_allclose(np.asarray(new_queue), d['after/queue'].T, atol=1e-6)
  assert int(new_ptr) == int(d['after/queue_ptr'][0])


def test_enqueue_rule():
  queue = jnp.zeros((5, 2))
  keys = jnp.arange(6.0).reshape(3, 2) + 1
  q, p = contrastive.enqueue(queue, jnp.asarray(4, jnp.int32), keys)   # wraps: 4, 0, 1
  np.testing.assert_array_equal(np.asarray(q)[[4, 0, 1]], keys)
  assert int(p) == 2
  q, p = contrastive.enqueue(queue, jnp.asarray(2, jnp.int32), keys)   # ends exactly at 5
  assert int(p) == 5
  q, p = contrastive.enqueue(q, p, keys)                                # ptr 5 acts as 0
  np.testing.assert_array_equal(np.asarray(q)[:3], keys)
  assert int(p) == 3
  big = jnp.arange(14.0).reshape(7, 2)
  q, p = contrastive.enqueue(queue, jnp.asarray(1, jnp.int32), big)     # more keys than slots
  np.testing.assert_array_equal(np.asarray(q), big[:5])
  assert int(p) == 1


def test_init_head_matches_the_reference_layout():
  head = contrastive.init_head(jax.random.key(0), C, 12)
  assert head.queue.shape == (12, 128)
  np.testing.assert_allclose(np.linalg.norm(head.queue, axis=1), 1.0, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(head.params), jax.tree.leaves(head.momentum_params)):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(head.params['fc0']['kernel']).max()) <= 1 / np.sqrt(C)


def test_discriminator_features_equal_recorded_reference():
  """D's 4x4 trunk features (return_feats) and logits = the reference InsGen D's, within 1e-5."""
  from dgan_jax.models import torch_names  # pylint: disable=import-outside-toplevel
  from dgan_jax.models.discriminator import Discriminator  # pylint: disable=import-outside-toplevel
  data = np.load(FIXTURE)
  sd = {k[len('D/sd/'):]: data[k] for k in data.files if k.startswith('D/sd/')}
  params, _ = torch_names.from_torch_state_dict(sd, 'D')
  d = Discriminator(img_resolution=16, img_channels=3, architecture='resnet', channel_base=128,
                    channel_max=16, conv_clamp=256, mbstd_group_size=2)
  logits, feats = d.apply({'params': params}, jnp.asarray(data['D/img']), jnp.zeros((4, 0)),
                          jnp.asarray(data['D/t']), return_feats=True)
  np.testing.assert_allclose(np.asarray(feats), data['D/feats'], atol=1e-5)
  np.testing.assert_allclose(np.asarray(logits), data['D/logits'], atol=1e-5)
