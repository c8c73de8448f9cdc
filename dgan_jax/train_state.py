"""The train state: everything a run needs to continue exactly, as one replicated pytree."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from dgan_jax import diffusion


@flax.struct.dataclass
class TrainState:
  """G, D and G_ema variables, both optimizer states, the diffusion controller and counters.

  `g_buffers` / `d_buffers` hold the networks' non-trainable Flax collections (StyleGAN2's w_avg and
  noise, BatchNorm statistics, spectral-norm vectors, frozen feature networks); `extra` holds what a
  model family adds (e.g. contrastive heads and their queues), a dict that is empty for most.

  `key` is the run's base key: every random draw of step k derives from `fold_in(key, k)`, so a
  restored state continues with exactly the randomness of an uninterrupted run.
  """
  step: jax.Array            # int32: minibatches done.
  images_seen: jax.Array     # int32: real images shown to D (cur_nimg of the reference).
  g_params: Any
  g_buffers: Any             # Non-trainable G state (w_avg, noise_const); G_ema shares it (reference).
  g_ema_params: Any
  d_params: Any
  d_buffers: Any             # Non-trainable D state (BatchNorm / spectral-norm / frozen collections).
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  diffusion: diffusion.DiffusionState
  augment: Any               # augment.state.AugmentState: the ADA probability and its controller.
  pl_mean: jax.Array         # Path-length regularizer's running mean (float32 scalar).
  key: jax.Array
  extra: Any                 # Family-specific state (dict; {} for most families).


def lazy_adam(lr: float, b1: float, b2: float, eps: float, reg_interval: int) -> optax.GradientTransformation:
  """Adam with the reference's lazy-regularization rescaling: lr * k/(k+1), b2 ** (k/(k+1)).

  The reference applies it whenever the network has a regularization interval (G: 4, D: 16), even
  when the regularizer's weight is 0. `reg_interval` 0 means no rescaling. Non-finite gradients are
  zeroed as the reference's nan_to_num does.
  """
  if reg_interval:
    ratio = reg_interval / (reg_interval + 1)
    lr, b2 = lr * ratio, b2 ** ratio
  return optax.chain(_nan_to_num(), optax.adam(lr, b1=b1, b2=b2, eps=eps))


def _nan_to_num() -> optax.GradientTransformation:
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
