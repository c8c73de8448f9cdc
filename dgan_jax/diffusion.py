"""The adaptive forward diffusion of Diffusion-GAN, as pure JAX functions.

Real and generated samples go through the same forward diffusion before the discriminator sees them:

    y = sqrt(abar_t) * x + sqrt(1 - abar_t) * sigma * eps,     t drawn from an exploration list t_epl.

`T`, the number of diffusion steps, adapts during training: a controller moves a level `p` in [0, 1] by
`sign(r_d - target) * C` every `ada_interval` minibatches, with `r_d = E[sign(D(y_real, t))]`, and sets
`T = t_min + round(p * (t_max - t_min))`. This reproduces the authors' `training/diffusion.py` and the
adaptive step of their training loop; see docs/diffusion.md for the formulas and the options that follow
the paper instead.

Feature-level diffusion (Diffusion-ProjectedGAN, the authors' `diffusion-projected-gan/pg_modules/
diffusion.py`) is the same process on feature maps, selected by three options that default to the
pixel-level behaviour: `t_per_channel` (one t per sample and channel, the last axis), and
`epl_nonzero_rule='level'` with `epl_max_nonzero` (t_epl holds min(round(epl_size * p),
epl_max_nonzero) draws, the rest clean).

Everything here works on fixed-size arrays (schedule tables of `t_max + 1` entries, a fixed-length t_epl),
so a new T never triggers a recompile, and the controller state is a pytree that lives inside the
replicated train state and is checkpointed with it.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

SCHEDULES = ('linear', 'quad', 'const', 'jsd', 'sigmoid', 'cosine', 'continuous_t')
TS_DISTS = ('priority', 'uniform')
PRIORITY_WEIGHTS = ('reference', 'paper')
EPL_NONZERO_RULES = ('fixed', 'level')

_COSINE_S = 0.008
_CONTINUOUS_B_MIN = 0.1
_CONTINUOUS_B_MAX = 5.0


# ---------------------------------------------------------------------------------------------------
# Beta schedules as fixed-length tables.


def _betas(kind: str, beta_start: float, beta_end: float, T: jax.Array, k: jax.Array) -> jax.Array:
  """beta_k for 1-based step indices k (float32) of a T-step schedule; values for k > T are unused."""
  T = T.astype(jnp.float32)
  span = jnp.maximum(T - 1.0, 1.0)  # np.linspace(a, b, 1) == [a]
  frac = (k - 1.0) / span           # 0 at k = 1, 1 at k = T
  if kind == 'linear':
    return beta_start + frac * (beta_end - beta_start)
  if kind == 'quad':
    return (math.sqrt(beta_start) + frac * (math.sqrt(beta_end) - math.sqrt(beta_start))) ** 2
  if kind == 'const':
    return jnp.full_like(k, beta_end)
  if kind == 'jsd':
    return 1.0 / (T - k + 1.0)
  if kind == 'sigmoid':
    return jax.nn.sigmoid(-6.0 + 12.0 * frac) * (beta_end - beta_start) + beta_start
  if kind == 'cosine':
    # abar(j) = cos^2(theta_j), theta_j = ((j / T) + s) / (1 + s) * pi / 2 (Nichol & Dhariwal), and
    # beta_k = 1 - abar(k) / abar(k-1), evaluated as sin(a - b) sin(a + b) / cos^2(b) to avoid the
    # float32 cancellation of 1 - ratio for the small early betas.
    def theta(j):
      return (j / T + _COSINE_S) / (1.0 + _COSINE_S) * (math.pi / 2)
    a, b = theta(k), theta(k - 1.0)
    delta = (1.0 / T) / (1.0 + _COSINE_S) * (math.pi / 2)
    return jnp.clip(jnp.sin(delta) * jnp.sin(a + b) / jnp.cos(b) ** 2, 0.0, 0.999)
  if kind == 'continuous_t':
    b_min, b_max = _CONTINUOUS_B_MIN, _CONTINUOUS_B_MAX
    return -jnp.expm1(-b_min / T - 0.5 * (b_max - b_min) * (2.0 * k - 1.0) / T**2)
  raise ValueError(f'Unknown beta schedule {kind!r}; expected one of {SCHEDULES}.')


def schedule(kind: str, beta_start: float, beta_end: float, T, T_max: int):
  """Returns `(sqrt_abar, sqrt_one_minus_abar)`, each float32 of shape `[T_max + 1]`.

  Entry 0 is "no diffusion" (abar = 1); entries 1..T follow the reference's T-step schedule, re-spaced
  for the given T exactly as the reference recomputes it whenever T changes. Entries past T repeat the
  value at T (they are never drawn). `T` may be a traced integer: the tables are computed in-graph.
  """
  if kind not in SCHEDULES:
    raise ValueError(f'Unknown beta schedule {kind!r}; expected one of {SCHEDULES}.')
  T = jnp.asarray(T, jnp.int32)
  k = jnp.arange(1, T_max + 1, dtype=jnp.float32)
  betas = _betas(kind, beta_start, beta_end, T, k)
  betas = jnp.where(k <= T.astype(jnp.float32), betas, 0.0)
  # log(abar) by a cumulative sum of log1p(-beta), and 1 - abar by expm1: both keep full float32
  # relative precision, also for the small 1 - abar of the first steps (the reference's float32
  # cumprod loses digits there; the tables match float64 math to about 1e-7).
  log_abar = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(jnp.log1p(-betas))])
  return jnp.exp(0.5 * log_abar), jnp.sqrt(-jnp.expm1(log_abar))


# ---------------------------------------------------------------------------------------------------
# Controller state: p, T, the exploration lists, the running r_d statistic and its own key.


@flax.struct.dataclass
class DiffusionState:
  """Adaptive-diffusion controller state (replicated on every device, checkpointed with the train state).

  Attributes:
    p_ticks: diffusion level in exact integer units (int32): p = p_ticks / (ada_kimg * 1000), and a
      controller step moves it by batch * ada_interval ticks. Integer arithmetic makes T follow the
      reference's float64 rule exactly (float32 p drifts by ~1e-6 and flips near-ties of round()).
    p: the same level as float32, for logging and readers.
    T: current number of diffusion steps (int32 scalar), `t_min + round(p * (t_max - t_min))`.
    t_epl: exploration lists, int32 `[num_pools, epl_size]`; one pool per reference GPU (`batch_gpu`
      samples), refreshed at every controller update.
    sign_sum, sign_count: running sum of sign(D(y_real, t)) and number of real samples since the last
      update (float32 scalars, accumulated by the discriminator steps as global sums).
    key: the controller's own replicated PRNG key (typed), split at every update.
    num_updates: number of controller updates so far (int32 scalar).
    r_d_last: the r_d statistic the last update acted on (for logging; 0 before the first).
  """
  p_ticks: jax.Array
  p: jax.Array
  T: jax.Array
  t_epl: jax.Array
  sign_sum: jax.Array
  sign_count: jax.Array
  key: jax.Array
  num_updates: jax.Array
  r_d_last: jax.Array


def validate_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError with the fix for any bad diffusion setting (call before compiling anything)."""
  problems = []
  if cfg.beta_schedule not in SCHEDULES:
    problems.append(f'diffusion.beta_schedule={cfg.beta_schedule!r} is unknown; use one of {SCHEDULES}.')
  if cfg.ts_dist not in TS_DISTS:
    problems.append(f'diffusion.ts_dist={cfg.ts_dist!r} is unknown; use one of {TS_DISTS}.')
  if cfg.priority_weights not in PRIORITY_WEIGHTS:
    problems.append(f'diffusion.priority_weights={cfg.priority_weights!r} is unknown; '
                    f'use one of {PRIORITY_WEIGHTS}.')
  if not (isinstance(cfg.t_min, int) and isinstance(cfg.t_max, int)) or cfg.t_min < 1:
    problems.append(f'diffusion.t_min={cfg.t_min!r} and t_max={cfg.t_max!r} must be integers >= 1.')
  elif cfg.t_min > cfg.t_max:
    problems.append(f'diffusion.t_min={cfg.t_min} is larger than diffusion.t_max={cfg.t_max}; '
                    'set t_min <= t_max (reference: 10 and 1000).')
  if not 0.0 <= cfg.target <= 1.0:
    problems.append(f'diffusion.target={cfg.target} is outside [0, 1]; r_d = E[sign(D)] is compared '
                    'with it (reference: 0.6).')
  if cfg.noise_std < 0:
    problems.append(f'diffusion.noise_std={cfg.noise_std} is negative; sigma must be >= 0 '
                    '(reference: 0.05).')
  if not 0.0 <= cfg.initial_p <= 1.0:
    problems.append(f'diffusion.initial_p={cfg.initial_p} is outside [0, 1].')
  if cfg.ada_interval < 1 or cfg.ada_kimg <= 0:
    problems.append(f'diffusion.ada_interval={cfg.ada_interval} must be >= 1 and '
                    f'diffusion.ada_kimg={cfg.ada_kimg} > 0.')
  if not 0 <= cfg.epl_zeros < cfg.epl_size:
    problems.append(f'diffusion.epl_zeros={cfg.epl_zeros} must be in [0, epl_size={cfg.epl_size}).')
  rule = cfg.get('epl_nonzero_rule', 'fixed')
  if rule not in EPL_NONZERO_RULES:
    problems.append(f'diffusion.epl_nonzero_rule={rule!r} is unknown; use one of '
                    f'{EPL_NONZERO_RULES} (fixed: epl_size - epl_zeros draws, the pixel-level '
                    'reference; level: min(round(epl_size * p), epl_max_nonzero), the projected one).')
  elif rule == 'level':
    cap = cfg.get('epl_max_nonzero', None)
    if not isinstance(cap, int) or not 0 <= cap <= cfg.epl_size:
      problems.append(f'diffusion.epl_max_nonzero={cap!r} must be an integer in '
                      f'[0, epl_size={cfg.epl_size}] (reference: 48 of 64).')
  if not isinstance(cfg.get('t_per_channel', False), bool):
    problems.append(f"diffusion.t_per_channel={cfg.get('t_per_channel')!r} must be True or False.")
  if not 0 < cfg.beta_start <= cfg.beta_end < 1:
    problems.append(f'diffusion.beta_start={cfg.beta_start}, beta_end={cfg.beta_end} must satisfy '
                    '0 < beta_start <= beta_end < 1.')
  if not problems:
    unit = cfg.ada_kimg * 1000
    span = max(cfg.t_max - cfg.t_min, cfg.epl_size if rule == 'level' else 1, 1)
    if unit != round(unit) or round(unit) * span >= 2**30:
      problems.append(f'diffusion.ada_kimg={cfg.ada_kimg} must make ada_kimg * 1000 a whole number with '
                      f'ada_kimg * 1000 * max(t_max - t_min, epl_size) < 2**30 (the exact integer '
                      'level); '
                      'e.g. ada_kimg=100 (reference).')
  if problems:
    raise ValueError('Bad diffusion config:\n  ' + '\n  '.join(problems))


def ticks_per_unit(cfg: ml_collections.ConfigDict) -> int:
  """Integer ticks of the level p per unit: p = ticks / (ada_kimg * 1000)."""
  return int(round(cfg.ada_kimg * 1000))


def level_ticks(p: float, cfg: ml_collections.ConfigDict) -> int:
  return int(round(p * ticks_per_unit(cfg)))


def ticks_to_T(ticks: jax.Array, cfg: ml_collections.ConfigDict) -> jax.Array:
  """T = t_min + round(p * (t_max - t_min)) in exact integer arithmetic, ties to even like Python."""
  steps = _round_ratio_half_even(jnp.asarray(ticks, jnp.int32) * (cfg.t_max - cfg.t_min),
                                 ticks_per_unit(cfg))
  return jnp.clip(cfg.t_min + steps, cfg.t_min, cfg.t_max).astype(jnp.int32)


def _round_ratio_half_even(num: jax.Array, den: int) -> jax.Array:
  """round(num / den) for non-negative int32 num, ties to even like Python's round()."""
  q = num // den
  r = num - q * den
  return q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1))).astype(jnp.int32)


def num_nonzero_entries(ticks: jax.Array, cfg: ml_collections.ConfigDict) -> jax.Array:
  """Number of drawn (non-clean) t_epl entries: `epl_size - epl_zeros` under the 'fixed' rule;
  min(round(epl_size * p), epl_max_nonzero) under 'level' (the projected reference's
  `diffusion_ind = min(round(p * 64), 48)`), in exact integer arithmetic."""
  if cfg.get('epl_nonzero_rule', 'fixed') == 'fixed':
    return jnp.asarray(cfg.epl_size - cfg.epl_zeros, jnp.int32)
  n = _round_ratio_half_even(jnp.asarray(ticks, jnp.int32) * cfg.epl_size, ticks_per_unit(cfg))
  return jnp.minimum(n, cfg.epl_max_nonzero).astype(jnp.int32)


def sample_t_epl(key: jax.Array, T: jax.Array, cfg: ml_collections.ConfigDict,
                 num_pools: int, p_ticks: jax.Array | None = None) -> jax.Array:
  """Draws `num_pools` exploration lists for the current T: int32 `[num_pools, epl_size]`.

  Each list has its non-zero draws from {1..T} first (priority or uniform), then zeros (clean).
  Rule 'fixed': `epl_size - epl_zeros` draws, as the pixel-level reference's `update_T` (64
  entries, 32 drawn, 32 clean). Rule 'level' (needs `p_ticks`, the level): min(round(epl_size *
  p), epl_max_nonzero) draws, as the projected reference (none at p = 0, 48 of 64 from p = 0.75).
  """
  if cfg.get('epl_nonzero_rule', 'fixed') == 'level':
    if p_ticks is None:
      raise ValueError("sample_t_epl: epl_nonzero_rule='level' needs the level p_ticks.")
    draws = _draw_t(key, T, cfg, (num_pools, cfg.epl_size))
    keep = jnp.arange(cfg.epl_size) < num_nonzero_entries(p_ticks, cfg)
    return jnp.where(keep[None, :], draws, 0)
  n_draw = cfg.epl_size - cfg.epl_zeros
  draws = _draw_t(key, T, cfg, (num_pools, n_draw))
  zeros = jnp.zeros((num_pools, cfg.epl_zeros), jnp.int32)
  return jnp.concatenate([draws, zeros], axis=1)


def _draw_t(key: jax.Array, T: jax.Array, cfg: ml_collections.ConfigDict, shape) -> jax.Array:
  """int32 draws from {1..T} with the configured distribution (priority or uniform)."""
  values = jnp.arange(1, cfg.t_max + 1)
  if cfg.ts_dist == 'priority':
    weights = values - 1.0 if cfg.priority_weights == 'reference' else values * 1.0
    logits = jnp.where((values <= T) & (weights > 0), jnp.log(jnp.maximum(weights, 1e-30)), -jnp.inf)
  else:
    logits = jnp.where(values <= T, 0.0, -jnp.inf)
  # T == 1 with reference priority weights has no admissible value (the reference divides by zero);
  # fall back to t = 1 then.
  logits = jnp.where(jnp.all(jnp.isinf(logits)), jnp.where(values == 1, 0.0, -jnp.inf), logits)
  return (jax.random.categorical(key, logits, shape=shape) + 1).astype(jnp.int32)


def init_state(key: jax.Array, cfg: ml_collections.ConfigDict, num_pools: int) -> DiffusionState:
  """Initial controller state: p = initial_p and T derived from it, fresh exploration lists."""
  ticks = jnp.asarray(level_ticks(cfg.initial_p, cfg), jnp.int32)
  T = ticks_to_T(ticks, cfg)
  key, sub = jax.random.split(key)
  return DiffusionState(
      p_ticks=ticks, p=(ticks / ticks_per_unit(cfg)).astype(jnp.float32), T=T,
      t_epl=sample_t_epl(sub, T, cfg, num_pools, ticks),
      sign_sum=jnp.zeros((), jnp.float32), sign_count=jnp.zeros((), jnp.float32),
      key=key, num_updates=jnp.zeros((), jnp.int32), r_d_last=jnp.zeros((), jnp.float32))


def accumulate(state: DiffusionState, sign_sum: jax.Array, sign_count: jax.Array) -> DiffusionState:
  """Adds a (global) batch of real-sample signs to the running r_d statistic."""
  return state.replace(sign_sum=state.sign_sum + sign_sum, sign_count=state.sign_count + sign_count)


def update(state: DiffusionState, cfg: ml_collections.ConfigDict, batch_size: int) -> DiffusionState:
  """One controller step (pure; the host calls it every `ada_interval` minibatches without a sync).

  r_d = sign_sum / sign_count;  p <- clip(p + sign(r_d - target) * batch * interval / (ada_kimg * 1000),
  0, 1);  T <- t_min + round(p * (t_max - t_min));  t_epl re-drawn;  statistic reset.
  With `adaptive=False` p stays where it is but t_epl is still refreshed.
  """
  r_d = running_r_d(state)
  den = ticks_per_unit(cfg)
  # A NaN/inf statistic (diverged D) must not move p: sign(NaN) cast to int32 is garbage.
  direction = jnp.where((state.sign_count > 0) & jnp.isfinite(r_d), jnp.sign(r_d - cfg.target),
                        0.0).astype(jnp.int32)
  ticks = state.p_ticks
  if cfg.adaptive:
    ticks = jnp.clip(ticks + direction * (batch_size * cfg.ada_interval), 0, den)
  T = ticks_to_T(ticks, cfg)
  key, sub = jax.random.split(state.key)
  num_pools = state.t_epl.shape[0]
  return DiffusionState(
      p_ticks=ticks, p=(ticks / den).astype(jnp.float32), T=T,
      t_epl=sample_t_epl(sub, T, cfg, num_pools, ticks),
      sign_sum=jnp.zeros((), jnp.float32), sign_count=jnp.zeros((), jnp.float32),
      key=key, num_updates=state.num_updates + 1, r_d_last=r_d.astype(jnp.float32))


def running_r_d(state: DiffusionState) -> jax.Array:
  """The current running statistic E[sign(D(y_real, t))] (0 when nothing was accumulated)."""
  return state.sign_sum / jnp.maximum(state.sign_count, 1.0)


# ---------------------------------------------------------------------------------------------------
# Noising.


def q_sample(x: jax.Array, t: jax.Array, sqrt_abar: jax.Array, sqrt_one_minus_abar: jax.Array,
             noise_std: float, eps: jax.Array) -> jax.Array:
  """y = sqrt_abar[t] x + sqrt_one_minus_abar[t] * noise_std * eps, x of shape [N, ...].

  t has shape [N] (one step per sample) or [N, C] (one per sample and channel, C = x's last axis).
  """
  if t.ndim == 1:
    shape = (-1,) + (1,) * (x.ndim - 1)
  elif t.ndim == 2 and t.shape == (x.shape[0], x.shape[-1]):
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
  else:
    raise ValueError(f'q_sample: t must be [N] or [N, C] for x of shape {x.shape}, got {t.shape}.')
  a = sqrt_abar[t].reshape(shape).astype(x.dtype)
  b = sqrt_one_minus_abar[t].reshape(shape).astype(x.dtype)
  return a * x + b * (noise_std * eps.astype(x.dtype))


def diffuse(key: jax.Array, x: jax.Array, t_epl_row: jax.Array, T: jax.Array,
            cfg: ml_collections.ConfigDict):
  """Diffuses one sub-batch (one reference GPU's samples): returns `(y, t)`.

  y has x's shape and dtype, t is int32 [N]; each sample's t is a uniform draw, with replacement, from
  `t_epl_row` (the sub-batch's exploration list) and eps ~ N(0, I). With `cfg.t_per_channel` t is
  [N, C], one draw per sample and channel (last axis; feature maps NHWC), as the projected
  reference's `np.random.choice(t_epl, size=N * C)`. The training step calls this once
  per sub-batch with a key derived from the sub-batch's global index, so results do not depend on how
  the batch is split over devices. With `cfg.enabled=False` returns `(x, zeros)`: the vanilla GAN.
  """
  if not cfg.enabled:
    t_shape = (x.shape[0], x.shape[-1]) if cfg.get('t_per_channel', False) else (x.shape[0],)
    return x, jnp.zeros(t_shape, jnp.int32)
  t, eps = draw(key, x.shape, t_epl_row, cfg.get('t_per_channel', False))
  sqrt_abar, sqrt_1m = schedule(cfg.beta_schedule, cfg.beta_start, cfg.beta_end, T, cfg.t_max)
  return q_sample(x, t, sqrt_abar, sqrt_1m, cfg.noise_std, eps), t


def draw(key: jax.Array, shape, t_epl_row: jax.Array, t_per_channel: bool = False):
  """The random draws of `diffuse` for an input of `shape`: (t, eps).

  t int32 [N] (or [N, C], C = the last axis, with `t_per_channel`): uniform picks, with
  replacement, from `t_epl_row`; eps float32 N(0, I) of `shape`. `key` splits into the two.
  """
  t_key, eps_key = jax.random.split(key)
  t_shape = (shape[0], shape[-1]) if t_per_channel else (shape[0],)
  t = t_epl_row[jax.random.randint(t_key, t_shape, 0, t_epl_row.shape[0])]
  return t, jax.random.normal(eps_key, shape, jnp.float32)


# ---------------------------------------------------------------------------------------------------
# Host-side convenience.


def controller_trajectory(cfg: ml_collections.ConfigDict, r_d_sequence: Sequence[float],
                          batch_size: int = 64):
  """(p, T) after each controller update for a given sequence of r_d statistics.

  Runs the same pure `update` as training (one update per statistic), so docs and tests can check
  the adaptive rule. Returns two numpy arrays of length `len(r_d_sequence)`.
  """
  validate_config(cfg)
  state = init_state(jax.random.key(0), cfg, num_pools=1)

  def body(s, r):
    s = s.replace(sign_sum=jnp.asarray(r, jnp.float32), sign_count=jnp.ones((), jnp.float32))
    s = update(s, cfg, batch_size)
    return s, (s.p, s.T)

  _, (ps, Ts) = jax.lax.scan(body, state, jnp.asarray(np.asarray(r_d_sequence, np.float32)))
  return np.asarray(ps), np.asarray(Ts)
