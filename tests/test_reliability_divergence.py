"""Issue 14.1: a diverging run stops with a clear error and never overwrites its good checkpoints."""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reliability_helpers as rh
import train_helpers
from dgan_jax import checkpoint, diffusion, divergence, errors, steps, train


def test_diverging_run_stops_before_saving_a_non_finite_state(tmp_path):
  """lr = 400: the state overflows within a few steps (step 3 on today's toy; 100-300 do not
  diverge in 40 steps). Logs only at the end, a checkpoint every step: the check before each save
  must catch it between log steps, and keep-last-3 must keep the good checkpoints just before it.
  (lr = 1e6 overflows at step 1, before any checkpoint.)"""
  config = rh.toy_config(steps=40, checkpoint_every=1, log_every=1000)
  config.optim.g_lr = config.optim.d_lr = 400.0
  with pytest.raises(errors.DivergenceError, match=r'became NaN or infinite at step') as info:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  message = str(info.value)
  first = int(re.search(r'at step (\d+)', message).group(1))
  assert 'optim.g_lr=400.0' in message and 'resume_from' in message
  assert re.search(r'(losses/metrics|params|opt_state)', message), message
  kept = rh.step_dirs(tmp_path / 'run')
  assert first > 1 and kept == list(range(max(1, first - 3), first)), (kept, first)
  # Every kept checkpoint verifies and is finite.
  replicated = jax.sharding.NamedSharding(steps.make_mesh(), jax.sharding.PartitionSpec())
  reference = jax.eval_shape(lambda: train.create_train_state(
      config, *_nets_and_tx(config)))
  ckpt = checkpoint.Checkpointer(tmp_path / 'run', read_only=True)
  for step in kept:
    state = ckpt.restore(checkpoint.abstract_like(reference, replicated), step)
    assert not divergence.nonfinite_leaves(state), step
  ckpt.close()


def _nets_and_tx(config):
  from dgan_jax import families
  return (families.build_networks(config), *train.make_optimizers(config))


@pytest.mark.parametrize('field,value', [('optim.g_lr', math.nan), ('optim.d_lr', math.inf),
                                         ('diffusion.noise_std', math.nan),
                                         ('diffusion.noise_std', math.inf)])
def test_nan_and_inf_config_values_are_rejected_up_front(tmp_path, field, value):
  config = rh.toy_config(steps=2)
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(errors.UserError, match=rf'{re.escape(field)}={value} is not a finite number'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_controller_ignores_a_non_finite_statistic():
  """NaN logits give a NaN r_d; sign(NaN) cast to int32 used to drive T up."""
  cfg = rh.toy_config().diffusion
  p, T = diffusion.controller_trajectory(cfg, [math.nan, math.inf, 0.9], batch_size=64)
  assert p[0] == 0 and p[1] == 0 and T[0] == cfg.t_min, (p, T)
  assert p[2] > 0     # A finite statistic still moves it.


def test_nonfinite_code_names_the_group():
  state = {'a_params': jnp.array([1.0, jnp.nan]), 'b_params': jnp.ones(3), 'count': jnp.int32(3)}
  names = divergence.group_names(state)
  assert names == [divergence.METRICS_GROUP, 'a_params', 'b_params']
  code = jax.jit(divergence.nonfinite_code)({'loss': jnp.float32(1.0)}, state)
  assert divergence.decode(int(code), names) == ['a_params']
  code = jax.jit(divergence.nonfinite_code)({'loss': jnp.float32(jnp.inf)}, {'b_params': jnp.ones(2)})
  assert int(code) == 1


def test_tracker_reports_the_first_bad_step_even_after_it_recovers():
  tracker = divergence.Tracker('hint.')
  state = {'g_params': jnp.ones(2)}
  for step, code in enumerate([0, 0, 2, 0, 1], start=1):
    tracker.observe({divergence.KEY: jnp.int32(code)}, step)
  with pytest.raises(errors.DivergenceError, match=r'g_params became NaN or infinite at step 3 '
                                                    r'\(checked at step 5\).*hint\.'):
    tracker.check(5, state)
  clean = divergence.Tracker()
  clean.observe({divergence.KEY: jnp.int32(0)}, 1)
  clean.check(1, state)


def test_step_metrics_carry_the_finiteness_code():
  config = rh.toy_config()
  mesh, nets, g_tx, d_tx, state = train_helpers.start(config, jax.devices()[:8])
  step_fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  state, metrics = step_fn(state, next(train_helpers.global_batches(config, mesh)))
  assert int(metrics[divergence.KEY]) == 0
  poisoned = state.replace(d_params=jax.tree.map(lambda x: x * np.nan, state.d_params))
  _, metrics = step_fn(poisoned, next(train_helpers.global_batches(config, mesh)))
  names = divergence.decode(int(metrics[divergence.KEY]), divergence.group_names(state))
  assert 'd_params' in names and divergence.METRICS_GROUP in names, names
