"""Orbax checkpoints of the whole train state (optimizer moments and diffusion controller included).

Orbax writes every checkpoint into a temporary directory and renames it into place only once it is
complete, so a run killed mid-save leaves the previous good checkpoint as the latest one; we never
delete a checkpoint ourselves (only orbax's keep-last-k policy retires old ones after a newer one is
final). Every process calls save and restore (multi-host); the resolved config is saved beside the state.
"""
from __future__ import annotations

import pathlib

import jax
import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
  """Keeps the last `keep` checkpoints of a run under `<workdir>/<subdir>` ('checkpoints', or
  'best' for the best-metric one)."""

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3, subdir: str = 'checkpoints'):
    self.directory = pathlib.Path(workdir).expanduser().absolute() / subdir
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=('state', 'config'))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, config: ml_collections.ConfigDict, *, force: bool = False) -> bool:
    """Starts an asynchronous save of `state` at `step`; `wait()` before exiting."""
    return self.manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      config=ocp.args.JsonSave(config.to_dict())),
        force=force)

  def restore(self, abstract_state, step: int | None = None):
    """Restores into `abstract_state` (a pytree of jax.ShapeDtypeStruct with shardings)."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return restored['state']

  def restore_config(self, step: int | None = None) -> dict:
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))['config']

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(state, sharding: jax.sharding.Sharding):
  """ShapeDtypeStructs of `state` carrying `sharding`, the restore target orbax needs."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)
