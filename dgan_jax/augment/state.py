"""The augmentation probability p and its controller, as a pytree and pure functions.

Two ways to set p, as in the reference:

- With the adaptive diffusion (Diffusion-GAN's `Diffusion.update_T`): p follows the diffusion level,
  capped: `p = min(diffusion_p, ada_maxp)` (`follow_diffusion`, after every diffusion update).
- Without it (stylegan2-ada's training loop): its own controller. Every `ada_interval` minibatches,
  with r = E[sign(D(x_real))] over those minibatches,
  `p <- clip(p + sign(r - ada_target) * batch * ada_interval / (ada_kimg * 1000), 0, 1)`
  (`accumulate` after each discriminator step, `update` every ada_interval steps).

p is kept in exact integer ticks (p = ticks / (ada_kimg * 1000)) like `diffusion.DiffusionState`,
so the trajectory is the reference's float64 rule exactly. The state lives in the replicated train
state and is checkpointed with it; nothing here triggers a recompile.
"""
from __future__ import annotations

from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


@flax.struct.dataclass
class AugmentState:
  """Augmentation controller state (replicated on every device).

  Attributes:
    p_ticks: the own controller's level in integer ticks (int32): p = p_ticks / (ada_kimg * 1000).
    p: the probability the ADA pipe uses now (float32 scalar): the own level, or the capped
      diffusion level after `follow_diffusion`.
    sign_sum, sign_count: running sum of sign(D(x_real)) and number of real samples since the last
      update (float32, global sums).
    num_updates: number of own-controller updates so far (int32).
    r_last: the statistic the last update acted on (logging; 0 before the first).
  """
  p_ticks: jax.Array
  p: jax.Array
  sign_sum: jax.Array
  sign_count: jax.Array
  num_updates: jax.Array
  r_last: jax.Array


def ticks_per_unit(cfg: ml_collections.ConfigDict) -> int:
  """Integer ticks of p per unit: p = ticks / (ada_kimg * 1000)."""
  return int(round(cfg.ada_kimg * 1000))


def init_state(cfg: ml_collections.ConfigDict) -> AugmentState:
  """p = initial_p, empty statistic."""
  den = ticks_per_unit(cfg)
  ticks = jnp.asarray(int(round(cfg.initial_p * den)), jnp.int32)
  zero = jnp.zeros((), jnp.float32)
  return AugmentState(p_ticks=ticks, p=(ticks / den).astype(jnp.float32), sign_sum=zero,
                      sign_count=zero, num_updates=jnp.zeros((), jnp.int32), r_last=zero)


def accumulate(state: AugmentState, sign_sum: jax.Array, sign_count: jax.Array) -> AugmentState:
  """Adds a (global) batch of real-sample signs sum(sign(D(x_real))) and their count."""
  return state.replace(sign_sum=state.sign_sum + sign_sum, sign_count=state.sign_count + sign_count)


def update(state: AugmentState, cfg: ml_collections.ConfigDict, batch_size: int) -> AugmentState:
  """One step of the own controller (no diffusion); the host calls it every `ada_interval` steps.

  p <- clip(p + sign(r - ada_target) * batch_size * ada_interval / (ada_kimg * 1000), 0, 1), with
  r = sign_sum / sign_count (no move when nothing was accumulated); the statistic is reset. With
  `adaptive=False` p stays at initial_p. The reference (Diffusion-GAN's training loops) clips at 0
  and 1; NVIDIA's stylegan2-ada clips only at 0.
  """
  den = ticks_per_unit(cfg)
  r = running_r(state)
  direction = jnp.where(state.sign_count > 0, jnp.sign(r - cfg.ada_target), 0.0).astype(jnp.int32)
  ticks = state.p_ticks
  if cfg.adaptive:
    ticks = jnp.clip(ticks + direction * (batch_size * cfg.ada_interval), 0, den)
  zero = jnp.zeros((), jnp.float32)
  return AugmentState(p_ticks=ticks, p=(ticks / den).astype(jnp.float32), sign_sum=zero,
                      sign_count=zero, num_updates=state.num_updates + 1,
                      r_last=r.astype(jnp.float32))


def capped_p(diffusion_p: jax.Array, cfg: ml_collections.ConfigDict) -> jax.Array:
  """The reference's `min(p, ada_maxp)`: the ADA probability that goes with a diffusion level."""
  return jnp.minimum(jnp.asarray(diffusion_p, jnp.float32), jnp.float32(cfg.ada_maxp))


def follow_diffusion(state: AugmentState, diffusion_p: jax.Array,
                     cfg: ml_collections.ConfigDict) -> AugmentState:
  """With diffusion: p = min(diffusion_p, ada_maxp) (call after every diffusion update and at init)."""
  return state.replace(p=capped_p(diffusion_p, cfg))


def running_r(state: AugmentState) -> jax.Array:
  """The current statistic E[sign(D(x_real))] (0 when nothing was accumulated)."""
  return state.sign_sum / jnp.maximum(state.sign_count, 1.0)


def controller_trajectory(cfg: ml_collections.ConfigDict, r_sequence: Sequence[float],
                          batch_size: int = 64) -> np.ndarray:
  """p after each own-controller update for a sequence of r statistics (runs the pure `update`)."""
  state = init_state(cfg)

  def body(s, r):
    s = s.replace(sign_sum=jnp.asarray(r, jnp.float32), sign_count=jnp.ones((), jnp.float32))
    s = update(s, cfg, batch_size)
    return s, s.p

  _, ps = jax.lax.scan(body, state, jnp.asarray(np.asarray(r_sequence, np.float32)))
  return np.asarray(ps)
