"""Issue 14.2-3: checkpoint integrity records, fallback past damaged checkpoints, refused saves."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reliability_helpers as rh
from dgan_jax import checkpoint, errors, train

DAMAGES = ('flip', 'truncate', 'garbage', 'no_metadata', 'empty')


def small_state(seed):
  """A train-state-like pytree (optimizer-sized arrays, a key, counters)."""
  rng = np.random.default_rng(seed)
  return {'step': jnp.int32(seed), 'params': {'w': jnp.asarray(rng.standard_normal((64, 64)),
                                                               jnp.float32),
                                               'b': jnp.asarray(rng.standard_normal(64), jnp.float32)},
          'moments': jnp.asarray(rng.standard_normal((128, 64)), jnp.float32),
          'key': jax.random.key(seed)}


def saved_run(tmp_path, steps=(1, 2, 3)):
  config = rh.toy_config()
  ckpt = checkpoint.Checkpointer(tmp_path, keep=5)
  states = {}
  for step in steps:
    states[step] = small_state(step)
    ckpt.save(step, states[step], config, force=True)
  ckpt.close()
  return states


def abstract(state):
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), state)


def test_save_writes_a_per_leaf_integrity_record(tmp_path):
  saved_run(tmp_path, steps=(1,))
  meta = json.loads((tmp_path / 'checkpoints' / '1' / '_CHECKPOINT_METADATA').read_text())
  record = meta['custom_metadata'][checkpoint.INTEGRITY_KEY]
  assert record['format'] == checkpoint.INTEGRITY_FORMAT
  assert set(record['crc32']) == {"['key']", "['moments']", "['params']['b']", "['params']['w']",
                                  "['step']"}


def test_a_flipped_byte_is_refused_on_restore(tmp_path):
  """Orbax alone restores it silently (wrong values, then NaN); the checksums catch it."""
  states = saved_run(tmp_path, steps=(1,))
  rh.damage(tmp_path / 'checkpoints' / '1', 'flip')
  ckpt = checkpoint.Checkpointer(tmp_path, read_only=True)
  with pytest.raises(errors.CheckpointError, match='step 1'):
    ckpt.restore(abstract(states[1]), 1)
  ckpt.close()


@pytest.mark.parametrize('kind', DAMAGES)
def test_restore_falls_back_to_the_newest_good_checkpoint(tmp_path, kind, capsys):
  states = saved_run(tmp_path)
  rh.damage(tmp_path / 'checkpoints' / '3', kind)
  ckpt = checkpoint.Checkpointer(tmp_path)
  state, step = ckpt.restore_latest_good(abstract(states[3]))
  ckpt.close()
  assert step == 2 and rh.same_tree(state, states[2])
  out = capsys.readouterr().out
  assert 'Skipped damaged checkpoint 3' in out and 'strict=False' not in out
  moved = list((tmp_path / checkpoint.DAMAGED_DIR).iterdir())
  assert len(moved) == 1 and moved[0].name.startswith('checkpoints-3-')   # moved, not deleted
  assert rh.step_dirs(tmp_path) == [1, 2]


def test_nothing_is_moved_when_no_checkpoint_verifies(tmp_path):
  states = saved_run(tmp_path, steps=(1, 2))
  for step in (1, 2):
    rh.damage(tmp_path / 'checkpoints' / str(step), 'no_metadata')
  ckpt = checkpoint.Checkpointer(tmp_path)
  with pytest.raises(errors.CheckpointError, match=r'(?s)No checkpoint.*step 2.*step 1'):
    ckpt.restore_latest_good(abstract(states[2]))
  ckpt.close()
  assert rh.step_dirs(tmp_path) == [1, 2] and not (tmp_path / checkpoint.DAMAGED_DIR).exists()


def test_a_shape_mismatch_is_not_mistaken_for_damage(tmp_path):
  states = saved_run(tmp_path, steps=(1, 2))
  wrong = abstract(states[2])
  wrong['moments'] = jax.ShapeDtypeStruct((128, 32), jnp.float32,
                                          sharding=wrong['moments'].sharding)
  ckpt = checkpoint.Checkpointer(tmp_path)
  with pytest.raises(errors.CheckpointMismatchError, match='other shapes'):
    ckpt.restore_latest_good(wrong)
  ckpt.close()
  assert rh.step_dirs(tmp_path) == [1, 2]


def test_a_non_finite_state_is_never_saved(tmp_path):
  state = small_state(1)
  state['moments'] = state['moments'].at[3, 4].set(jnp.nan)
  ckpt = checkpoint.Checkpointer(tmp_path)
  with pytest.raises(errors.DivergenceError, match=r"\['moments'\]"):
    ckpt.save(1, state, rh.toy_config(), force=True)
  ckpt.close()
  assert rh.step_dirs(tmp_path) == []


def test_training_resumes_past_a_damaged_latest_checkpoint(tmp_path, capsys):
  """Through the training loop: the damaged newest checkpoint is skipped, the run continues from
  the one before and ends where an uninterrupted run ends."""
  config = rh.toy_config(steps=12, checkpoint_every=4)
  full = train.train_and_evaluate(config, str(tmp_path / 'full'))
  train.train_and_evaluate(rh.toy_config(steps=12, checkpoint_every=4), str(tmp_path / 'run'),
                           stop_after_steps=8)
  assert rh.step_dirs(tmp_path / 'run') == [4, 8]
  rh.damage(tmp_path / 'run' / 'checkpoints' / '8', 'flip')
  capsys.readouterr()
  resumed = train.train_and_evaluate(rh.toy_config(steps=12, checkpoint_every=4),
                                     str(tmp_path / 'run'))
  assert 'Skipped damaged checkpoint 8' in capsys.readouterr().out
  assert int(resumed.step) == 12
  assert rh.same_tree((full.g_params, full.d_params), (resumed.g_params, resumed.d_params))
  assert len(list((tmp_path / 'run' / checkpoint.DAMAGED_DIR).iterdir())) == 1
