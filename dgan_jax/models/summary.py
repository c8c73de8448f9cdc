"""Print the parameter tables of G and D for an experiment config.

  python -m dgan_jax.models.summary --config=configs/cifar10.py

Ends with `G params: N` and `D params: N` (trainable parameters; buffers such as w_avg and
noise_const excluded, like the reference's counts). Shapes only: nothing is computed.

`print_projected_tables(config)` does the same for the Projected-GAN networks
(config.model.projected): G's and D's trainable 'params', then their non-trainable collections
(BatchNorm statistics, spectral-norm vectors, D's frozen backbone and mixers) as separate tables.
"""
from absl import app
from clu import parameter_overview
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from dgan_jax.models import build_models



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


def _tree_size(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def projected_abstract_variables(config, batch: int = 2):
  """(G, D, G variable shapes, D variable shapes) of the projected networks (jax.eval_shape)."""
  from dgan_jax.models.projected import config as pconfig  # pylint: disable=import-outside-toplevel
  generator = pconfig.build_generator(config)
  discriminator = pconfig.build_discriminator(config)
  res, ch = int(config.data.resolution), int(config.data.channels)
  c = jnp.zeros((batch, int(config.model.get('c_dim', 0))))
  z = jnp.zeros((batch, generator.z_dim))
  keys = {'params': jax.random.key(0), 'noise': jax.random.key(1)}
  g_vars = jax.eval_shape(lambda: generator.init(keys, z, c))
  d_vars = jax.eval_shape(lambda: discriminator.init(jax.random.key(0),
                                                     jnp.zeros((batch, res, res, ch)), c))
  return generator, discriminator, g_vars, d_vars


def print_projected_tables(config) -> dict[str, int]:
  """Prints G's and D's parameter tables for config.model.projected; returns the counts.

  'G' / 'D': trainable parameters (the reference's G.parameters() / D.discriminator.parameters();
  D's frozen feature network is not trained). 'D_frozen': every frozen value (backbone weights
  and BatchNorm statistics, mixers); 'D_frozen_parameters': the same without the statistics
  (the reference's D.feature_network.parameters()).
  """
  _, _, g_vars, d_vars = projected_abstract_variables(config)
  for title, variables in (('Generator', g_vars), ('Discriminator', d_vars)):
    print(f'{title} params:')
    print(parameter_overview.get_parameter_overview(variables['params'], include_stats=False))
    for collection in sorted(k for k in variables if k != 'params'):
      print(f'{title} {collection} (not trainable): {_tree_size(variables[collection])} values')
  frozen = d_vars['frozen']
  stats = sum(x.size for path, x in jax.tree_util.tree_flatten_with_path(frozen)[0]
              if str(path[-1].key) in ('running_mean', 'running_var'))
  counts = {'G': _tree_size(g_vars['params']), 'D': _tree_size(d_vars['params']),
            'D_frozen': _tree_size(frozen), 'D_frozen_parameters': _tree_size(frozen) - stats}
  print(f"G params: {counts['G']}")
  print(f"D params: {counts['D']}")
  print(f"D frozen (backbone + mixers, not trained): {counts['D_frozen']} values, "
        f"{counts['D_frozen_parameters']} without BatchNorm statistics")
  return counts


def main(argv):
  del argv
  from absl import flags  # pylint: disable=import-outside-toplevel
  config = flags.FLAGS.config
  if config.model.get('family') == 'projected':   # its own table: frozen backbone and mixers
    print_projected_tables(config)
    return
  from dgan_jax import families  # pylint: disable=import-outside-toplevel
  nets = families.build_networks(config)   # any family: the networks the loop trains
  g_params, g_buffers, d_params, d_buffers = jax.eval_shape(
      lambda: nets.init(jax.random.key(0), 2))
  for title, params, buffers in (('Generator', g_params, g_buffers),
                                 ('Discriminator', d_params, d_buffers)):
    print(f'{title} params:')
    print(parameter_overview.get_parameter_overview(params, include_stats=False))
    if buffers:
      print(f'{title} buffers (not trainable):')
      print(parameter_overview.get_parameter_overview(buffers, include_stats=False))
  print(f"G params: {count_params(g_params)}")
  print(f"D params: {count_params(d_params)}")


if __name__ == '__main__':
  # Defined here, not at import: dgan_jax.main defines its own --config (one flag registry).
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  app.run(main)
