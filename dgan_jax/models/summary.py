"""Print the parameter tables of G and D for an experiment config.

  python -m dgan_jax.models.summary --config=configs/cifar10.py

Ends with `G params: N` and `D params: N` (trainable parameters; buffers such as w_avg and
noise_const excluded, like the reference's counts). Shapes only: nothing is computed.
"""
from absl import app
from clu import parameter_overview
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from dgan_jax.models import build_models

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)


def abstract_variables(generator, discriminator, batch: int = 2):
  """Shapes/dtypes of G's and D's variables via jax.eval_shape (no FLOPs, no memory)."""
  res, ch = generator.img_resolution, generator.img_channels
  z = jnp.zeros((batch, generator.z_dim))
  c = jnp.zeros((batch, generator.c_dim))
  keys = {'params': jax.random.key(0), 'noise': jax.random.key(1)}
  g_vars = jax.eval_shape(lambda: generator.init(keys, z, c))
  img = jnp.zeros((batch, res, res, ch))
  t = jnp.zeros((batch,), jnp.int32)
  d_vars = jax.eval_shape(
      lambda: discriminator.init(jax.random.key(0), img, jnp.zeros((batch, discriminator.c_dim)),
                                 t))
  return g_vars, d_vars


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def main(argv):
  del argv
  generator, discriminator = build_models(_CONFIG.value)
  g_vars, d_vars = abstract_variables(generator, discriminator)
  for title, variables in (('Generator', g_vars), ('Discriminator', d_vars)):
    print(f'{title} params:')
    print(parameter_overview.get_parameter_overview(variables['params'], include_stats=False))
    if 'buffers' in variables:
      print(f'{title} buffers (not trainable):')
      print(parameter_overview.get_parameter_overview(variables['buffers'], include_stats=False))
  print(f"G params: {count_params(g_vars['params'])}")
  print(f"D params: {count_params(d_vars['params'])}")


if __name__ == '__main__':
  app.run(main)
