"""InsGen's contrastive heads (Yang et al., 2021; reference `diffusion-insgen/training/contrastive_head.py`).

A head projects D's 4x4 trunk features (mean-pooled) through an MLP (C -> C -> 128) to unit vectors
(queries); a momentum copy of the MLP gives the keys; a queue of earlier keys holds the negatives.
The loss is MoCo's InfoNCE: cross-entropy of [q.k, q.queue] / temperature with the positive first.

Everything here is a pure function of arrays: the head's trainable MLP, its momentum copy and the
queue (a fixed-size ring buffer with the reference's pointer rule) live in the train state.
"""
from __future__ import annotations

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

KEY_DIM = 128


def torch_linear_init(fan_in: int):
  """torch.nn.Linear's default init for weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class HeadMLP(nn.Module):
  """Linear(C, C) -> ReLU -> Linear(C, 128), torch's init (names fc0/fc1 <-> mlp.0/mlp.2)."""
  inplanes: int

  @nn.compact
  def __call__(self, x):
    init = torch_linear_init(self.inplanes)
    x = nn.Dense(self.inplanes, kernel_init=init, bias_init=init, name='fc0')(x)
    x = nn.relu(x)
    return nn.Dense(KEY_DIM, kernel_init=init, bias_init=init, name='fc1')(x)


@flax.struct.dataclass
class HeadState:
  """One contrastive head: MLP params, their momentum copy, the key queue and its pointer."""
  params: dict
  momentum_params: dict
  queue: jax.Array         # [queue_size, 128] unit keys (rows; the reference stores columns).
  ptr: jax.Array           # int32: the reference's queue_ptr (may equal queue_size; see enqueue).


def normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """torch.nn.functional.normalize along the last axis: x / max(|x|, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def init_head(key: jax.Array, inplanes: int, queue_size: int) -> HeadState:
  """A head as the reference builds it: momentum copy = MLP, queue of normalised N(0, 1) keys."""
  k_mlp, k_queue = jax.random.split(key)
  params = HeadMLP(inplanes).init(k_mlp, jnp.zeros((1, inplanes)))['params']
  queue = normalize(jax.random.normal(k_queue, (queue_size, KEY_DIM), jnp.float32))
  return HeadState(params=params, momentum_params=params, queue=queue,
                   ptr=jnp.zeros((), jnp.int32))


def pool(features: jax.Array) -> jax.Array:
  """[N, H, W, C] trunk features -> [N, C] (the reference's mean over the spatial axes)."""
  features = features.astype(jnp.float32)
  return features.mean(axis=(1, 2)) if features.ndim == 4 else features


def momentum_update(momentum_params, params, momentum: float):
  """m <- m * momentum + q * (1 - momentum) (reference _momentum_update_key_encoder)."""
  return jax.tree.map(lambda m, q: m * momentum + q * (1.0 - momentum), momentum_params, params)


def embed(params, features: jax.Array, inplanes: int) -> jax.Array:
  """Unit vectors [N, 128] of pooled features through an MLP."""
  return normalize(HeadMLP(inplanes).apply({'params': params}, pool(features)))


def info_nce(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float) -> jax.Array:
  """Mean cross-entropy of logits [q.k, q.queue^T] / temperature with the positive at index 0."""
  l_pos = jnp.sum(q * k, axis=1, keepdims=True)
  l_neg = q @ jax.lax.stop_gradient(queue).T
  logits = jnp.concatenate([l_pos, l_neg], axis=1) / temperature
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def enqueue(queue: jax.Array, ptr: jax.Array, keys: jax.Array):
  """Writes `keys` [B, 128] into the ring buffer at `ptr`; returns (queue, ptr).

  The reference's rule (_dequeue_and_enqueue): B > size fills the queue with the first `size` keys
  and keeps ptr; else keys go to positions ptr, ptr + 1, ... modulo size and ptr becomes ptr + B,
  minus size when that passes the end (so ptr may equal size, which acts as 0 next time).
  """
  size, batch = queue.shape[0], keys.shape[0]
  keys = jax.lax.stop_gradient(keys).astype(queue.dtype)
  if batch > size:
    return keys[:size], ptr
  positions = (ptr + jnp.arange(batch)) % size
  new_ptr = jnp.where(ptr + batch <= size, ptr + batch, ptr + batch - size)
  return queue.at[positions].set(keys), new_ptr.astype(jnp.int32)
