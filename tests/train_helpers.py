"""Shared by the training-loop tests: a fresh state and global batches on a mesh of given devices."""
import jax

from dgan_jax import steps, train
from dgan_jax.data import device
from dgan_jax.families import build_networks


def start(config, devices):
  """(mesh, nets, g_tx, d_tx, state) as the training loop sets them up, on `devices`."""
  mesh = steps.make_mesh(devices)
  nets = build_networks(config)
  g_tx, d_tx = train.make_optimizers(config)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(lambda: train.create_train_state(config, nets, g_tx, d_tx),
                  out_shardings=replicated)()
  return mesh, nets, g_tx, d_tx, state


def global_batches(config, mesh):
  """The loop's data iterator from step 0, as sharded global arrays."""
  for batch in train.make_data_iterator(config, 0):
    yield device.to_global(batch, device.batch_sharding(mesh))


def train_step(config, nets, mesh, g_tx, d_tx, phases):
  """The loop's compiled step for `phases`, with the family's extension (InsGen's heads, ...)."""
  from dgan_jax import families, steps   # pylint: disable=import-outside-toplevel
  extension = families.get(config).extension(config, nets, mesh)
  return steps.make_train_step(config, nets, mesh, g_tx, d_tx, phases, extension=extension)


def run_loop(config, workdir, total_steps):
  """The training loop for `total_steps` (resuming from `workdir`), then its restored last state."""
  from dgan_jax import run_dir   # pylint: disable=import-outside-toplevel
  config.train.total_steps = total_steps
  train.train_and_evaluate(config, str(workdir))
  return run_dir.restore_state(workdir, run_dir.load_config(workdir))[1]


def assert_states_equal(a, b, trees):
  """Bitwise equality of the named TrainState fields (PRNG keys compared by their data)."""
  import numpy as np   # pylint: disable=import-outside-toplevel

  def values(x):
    return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x)
  for tree in trees:
    for x, y in zip(jax.tree.leaves(getattr(a, tree)), jax.tree.leaves(getattr(b, tree))):
      np.testing.assert_array_equal(values(x), values(y), err_msg=tree)
