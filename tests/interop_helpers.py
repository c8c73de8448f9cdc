"""Run directories and train states for the interop tests (small configs, perturbed weights)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from configs import cifar10
from dgan_jax import diffusion, run_dir
from dgan_jax.families import build_networks
from dgan_jax.train import create_train_state, make_optimizers


def config_for(variant: str | None = 'smoke', c_dim: int = 0):
  """A cifar10 config (variant), float32 compute (exactness), `c_dim` classes."""
  config = cifar10.get_config(variant)
  config.model.mixed_precision = 'float32'
  config.model.c_dim = c_dim
  config.data.use_labels = c_dim > 0
  return config


def random_state(config, seed: int = 0):
  """A TrainState of the config's shapes filled with random numbers (no forward pass: fast)."""
  nets = build_networks(config)
  g_tx, d_tx = make_optimizers(config)
  shapes = jax.eval_shape(lambda: create_train_state(config, nets, g_tx, d_tx))
  rng = np.random.default_rng(seed)

  def fill(s):
    if jnp.issubdtype(s.dtype, jax.dtypes.prng_key):
      return jax.random.key(seed)
    if jnp.issubdtype(s.dtype, jnp.floating):
      return rng.standard_normal(s.shape).astype(s.dtype)
    return np.zeros(s.shape, s.dtype)
  state = jax.tree.map(fill, shapes)
  num_pools = config.train.batch_size // config.train.batch_gpu   # a valid controller (p = 0)
  return nets, state.replace(diffusion=diffusion.init_state(jax.random.key(seed), config.diffusion,
                                                            num_pools))


def make_run(workdir, config, seed: int = 0, step: int = 7):
  """A run directory with one checkpoint of a random state at `step`; returns (nets, state)."""
  nets, state = random_state(config, seed)
  state = state.replace(step=np.asarray(step, np.int32),
                        images_seen=np.asarray(step * config.train.batch_size, np.int32))
  run_dir.write_run(workdir, config, state, step)
  return nets, state


def jax_images(nets, state, z, c, psi=1.0, cutoff=None, params='g_ema_params'):
  """NHWC float32 images of the dgan_jax generator with const noise (psi traced: one compile)."""
  variables = {'params': getattr(state, params), 'buffers': state.g_buffers}
  out = _apply(nets.G, cutoff)(variables, jnp.asarray(z, jnp.float32), jnp.asarray(c, jnp.float32),
                               jnp.float32(psi))
  return np.asarray(out)


@functools.cache
def _apply(generator, cutoff):
  return jax.jit(lambda v, z, c, psi: generator.apply(v, z, c, truncation_psi=psi,
                                                        truncation_cutoff=cutoff,
                                                        noise_mode='const'))
