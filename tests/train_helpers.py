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
