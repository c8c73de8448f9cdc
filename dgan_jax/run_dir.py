"""Reading and writing a dgan_jax run directory outside the training loop.

A run directory is `<workdir>/config.json` plus orbax checkpoints under `<workdir>/checkpoints`
(see checkpoint.py). Export, generate and import use these helpers so that a run they read or
write is exactly what `train.train_and_evaluate` reads and writes.
"""
from __future__ import annotations


import jax
import ml_collections

from dgan_jax import checkpoint, errors, families, paths, run_files
from dgan_jax.interop import reference_config
from dgan_jax.networks import Networks
from dgan_jax.train_state import TrainState


def load_config(workdir: paths.PathLike, step: int | None = None,
                expected: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """The config a run's checkpoint was saved with (else `<workdir>/config.json`).

  If `expected` (e.g. a --config given on the command line) defines different networks, raises a
  ValueError listing the differing fields: the checkpoint comes from another preset or variant.
  """
  workdir = paths.path(workdir)
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)   # Creates nothing in a missing workdir.
  try:
    if ckpt.latest_step() is None:
      raise errors.MissingInputError(
          f'{workdir} has no checkpoint under {ckpt.directory}; pass the --workdir of a dgan_jax '
          'run (or create one from a reference pickle with python -m dgan_jax.import_torch).')
    saved = ckpt.restore_config(step)
  except FileNotFoundError:
    raise
  except Exception:  # pylint: disable=broad-except  (older checkpoints without a config item)
    path = workdir / 'config.json'
    if not path.exists():
      raise
    saved = run_files.read_json(path)
    if saved is None:   # Damaged (moved aside): report the checkpoint's own error.
      raise
  finally:
    ckpt.close()
  config = ml_collections.ConfigDict(_lists_to_tuples(saved))
  if expected is not None and families.family_name(config) == 'stylegan2':
    expected = ml_collections.ConfigDict(expected.to_dict())
    if expected.data.use_labels == config.data.use_labels:
      expected.model.c_dim = config.model.c_dim   # Training reads the label count from the data.
    diffs = reference_config.model_differences(config, expected)
    if diffs:
      raise errors.UserError(
          f'The checkpoint in {workdir} was trained with other networks than the given --config '
          '(another preset or variant):\n  ' + '\n  '.join(diffs) +
          '\nDrop --config to use the run\'s own config, or point --workdir at a run of this config.')
  return config


def _lists_to_tuples(obj):
  """JSON turns the configs' tuples into lists; give them back their tuple type (so a saved
  config equals the one it came from and command-line overrides keep parsing)."""
  if isinstance(obj, dict):
    return {k: _lists_to_tuples(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return tuple(_lists_to_tuples(v) for v in obj)
  return obj


def abstract_state(config: ml_collections.ConfigDict, nets: Networks, sharding=None):
  """ShapeDtypeStructs of the run's TrainState (what orbax restores into); no arrays allocated."""
  family = families.get(config)
  g_tx, d_tx = family.make_optimizers(config)
  shapes = jax.eval_shape(lambda: family.init_state(config, nets, g_tx, d_tx))
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return checkpoint.abstract_like(shapes, sharding)


def restore_state(workdir: paths.PathLike, config: ml_collections.ConfigDict,
                  step: int | None = None) -> tuple[Networks, TrainState]:
  """(networks, full train state) of a run's checkpoint `step` (latest if None), on one device."""
  nets = families.get(config).build_networks(config)
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)
  try:
    try:
      state = ckpt.restore(abstract_state(config, nets), step)
    except (ValueError, KeyError, TypeError) as e:
      raise errors.UserError(
          f'The checkpoint in {workdir} does not fit the networks of the config used to read it '
          f'(another preset or variant, or an edited config?): {e}') from e
  finally:
    ckpt.close()
  return nets, state


def write_run(workdir: paths.PathLike, config: ml_collections.ConfigDict, state: TrainState,
              step: int) -> paths.epath.Path:
  """Writes `config.json` and a checkpoint at `step`, as the training loop does; returns workdir."""
  workdir = paths.path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  run_files.write_atomic(workdir / 'config.json', config.to_json(indent=2))
  ckpt = checkpoint.Checkpointer(workdir)
  ckpt.save(step, state, config, force=True)
  ckpt.close()
  return workdir
