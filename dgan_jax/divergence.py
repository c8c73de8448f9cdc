"""Divergence detection: a NaN or inf in a loss or in the train state stops the run before it can
overwrite good checkpoints.

In the step (in-graph, no host sync): `nonfinite_code(metrics, state)` is an int32 bitmask, 0 when
every loss/metric and every float leaf of the new state is finite; bit 0 stands for the metrics,
bit i for the i-th float-holding field of the state (g_params, d_params, ...). It rides in the
metrics dict under `KEY`.

In the loop (host): `Tracker.observe` folds each step's code into a device-side record of the first
non-finite step (a tiny asynchronous op, no sync), and `Tracker.check` reads that record (one
scalar) at each log step and before every checkpoint save, sample grid and evaluation. So a
transient NaN between two log steps is still seen before the next save, and no checkpoint is ever
written from a state at or after the first non-finite step; keep-last-k then never rotates the good
checkpoints out. `check` raises DivergenceError naming the first bad step and the quantities.
"""
from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax import errors

KEY = 'health/nonfinite'
METRICS_GROUP = 'losses/metrics'


def _is_float(x) -> bool:
  return hasattr(x, 'dtype') and jnp.issubdtype(x.dtype, jnp.inexact)


def state_groups(state) -> list:
  """[(name, subtree)] of the state's top-level fields that hold float leaves, in field order."""
  if dataclasses.is_dataclass(state):
    items = [(f.name, getattr(state, f.name)) for f in dataclasses.fields(state)]
  elif isinstance(state, dict):
    items = sorted(state.items())
  else:
    items = [('state', state)]
  return [(name, tree) for name, tree in items if any(map(_is_float, jax.tree.leaves(tree)))]


def group_names(state) -> list[str]:
  return [METRICS_GROUP] + [name for name, _ in state_groups(state)]


def _all_finite(tree) -> jax.Array:
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if _is_float(x)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def nonfinite_code(metrics: dict, state) -> jax.Array:
  """In-graph int32 bitmask of the groups (metrics, then state fields) holding a NaN or inf."""
  groups = [(METRICS_GROUP, {k: v for k, v in metrics.items() if k != KEY})] + state_groups(state)
  code = jnp.zeros((), jnp.int32)
  for bit, (_, tree) in enumerate(groups):
    code = code | jnp.where(_all_finite(tree), 0, 1 << bit).astype(jnp.int32)
  return code


def decode(code: int, names: list[str]) -> list[str]:
  return [name for bit, name in enumerate(names) if int(code) >> bit & 1]


@jax.jit
def _fold(first_step, first_code, code, step):
  new = (first_step < 0) & (code != 0)
  return jnp.where(new, step, first_step), jnp.where(new, code, first_code)


class Tracker:
  """Host side of the check: `observe` every step (asynchronous), `check` before writing.

  `observe` also bounds the steps in flight to `max_in_flight`: it waits for the code of the step
  that many steps back, which keeps the device queue full (no idle device, unlike a sync on the
  current step) while XLA:CPU's in-process collectives, which abort with "may be stuck" when
  dozens of multi-device steps are queued, never see more than that.
  """

  def __init__(self, hint: str = '', max_in_flight: int = 8):
    self.hint = hint
    self._first_step = jnp.asarray(-1, jnp.int32)
    self._first_code = jnp.asarray(0, jnp.int32)
    self._in_flight = collections.deque()
    self._max_in_flight = max_in_flight

  def observe(self, metrics: dict, step: int) -> None:
    """Folds this step's code in (`step` = the step count after it). No sync on this step."""
    code = metrics[KEY]
    if isinstance(code, jax.Array):
      code = code.addressable_data(0)     # Replicated: one local copy, no cross-device op.
    self._first_step, self._first_code = _fold(self._first_step, self._first_code, code,
                                               jnp.asarray(step, jnp.int32))
    self._in_flight.append(code)
    if len(self._in_flight) > self._max_in_flight:
      jax.block_until_ready(self._in_flight.popleft())

  def check(self, step: int, state=None, metrics: dict | None = None) -> None:
    """Raises DivergenceError if any step so far was non-finite (one scalar read). `state` names
    the groups of the code (its structure only), `metrics` adds the non-finite values now."""
    first_step, first_code = (int(v) for v in jax.device_get((self._first_step, self._first_code)))
    if first_step < 0:
      return
    names = group_names(state) if state is not None else []
    what = decode(first_code, names) or [f'values (code {first_code:#x})']
    now = []
    if metrics is not None:
      values = jax.device_get({k: v for k, v in metrics.items() if k != KEY})
      now = sorted(k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, float))))
    detail = f'; non-finite metrics now: {", ".join(now)}' if now else ''
    raise errors.DivergenceError(
        f'Training diverged: {", ".join(what)} became NaN or infinite at step {first_step} '
        f'(checked at step {step}{detail}). No checkpoint was written from that state; the '
        f'checkpoints before it are kept. {self.hint}'.strip())


def nonfinite_leaves(tree) -> list[str]:
  """Host check of a fetched pytree: the key paths of float leaves holding a NaN or inf."""
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.asarray(leaf) if _is_float(leaf) else None
    if array is not None and not np.all(np.isfinite(array)):
      bad.append(jax.tree_util.keystr(path))
  return bad


def hint_for(config, workdir) -> str:
  """The usual fix, with the config's current learning rates."""
  o = config.optim
  return (f'Lower the learning rates (now optim.g_lr={o.g_lr}, optim.d_lr={o.d_lr}) or check the '
          'data and loss settings. The last good checkpoint in '
          f'{workdir} is kept: resuming it with changed learning rates is refused (a new run '
          'starts from its weights through an exported pickle as --config.train.resume_from, '
          'docs/reliability.md); rerunning the same command would repeat the same steps.')
