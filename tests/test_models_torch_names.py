"""flax <-> PyTorch state-dict mapping: exact keys/shapes/dtypes of the reference cifar nets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from dgan_jax.models import build_models, presets, torch_names
def random_cifar_variables():
  """Full cifar G/D variables with random leaves (shapes from eval_shape: no forward pass)."""
  config = base.get_base_config()
  presets.apply_preset(config, 'cifar')
  g, d = build_models(config)
  z, c = jnp.zeros((2, 512)), jnp.zeros((2, 0))
  g_shapes = jax.eval_shape(lambda: g.init({'params': jax.random.key(0),
                                            'noise': jax.random.key(1)}, z, c))
  d_shapes = jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), c,
                                           jnp.zeros((2,), jnp.int32)))
  rng = np.random.default_rng(0)
  fill = lambda tree: jax.tree.map(
      lambda s: rng.standard_normal(s.shape).astype(np.float32), tree)
  return fill(g_shapes), fill(d_shapes)


@pytest.fixture(scope='module')
def cifar_vars():
  return random_cifar_variables()


def test_cifar_state_dicts_match_the_reference_exactly(cifar_vars, reference_shapes):
  reference = reference_shapes
  g_vars, d_vars = cifar_vars
  for which, variables in (('G', g_vars), ('D', d_vars)):
    sd = torch_names.to_torch_state_dict(variables['params'], variables.get('buffers'), which)
    produced = [(k, tuple(v.shape), str(v.dtype)) for k, v in sd.items()]
    assert produced == reference[which]            # same keys, order, shapes and dtypes


def test_round_trip_and_layout_rules(cifar_vars):
  g_vars, _ = cifar_vars
  sd = torch_names.to_torch_state_dict(g_vars['params'], g_vars['buffers'], 'G')
  conv = g_vars['params']['synthesis']['b32']['conv0']['weight']          # [kh, kw, in, out]
  np.testing.assert_array_equal(sd['synthesis.b32.conv0.weight'], conv.transpose(3, 2, 0, 1))
  fc = g_vars['params']['mapping']['fc1']['weight']                        # [in, out]
  np.testing.assert_array_equal(sd['mapping.fc1.weight'], fc.T)
  const = g_vars['params']['synthesis']['b4']['const']                     # [H, W, C]
  np.testing.assert_array_equal(sd['synthesis.b4.const'], const.transpose(2, 0, 1))
  np.testing.assert_allclose(sd['synthesis.b8.resample_filter'],
                             np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
  params, buffers = torch_names.from_torch_state_dict(sd, 'G')
  jax.tree.map(np.testing.assert_array_equal, params, g_vars['params'])
  jax.tree.map(np.testing.assert_array_equal, buffers, g_vars['buffers'])


def test_import_rejects_a_foreign_filter_and_bad_which(cifar_vars):
  _, d_vars = cifar_vars
  sd = torch_names.to_torch_state_dict(d_vars['params'], None, 'D')
  sd['b32.conv1.resample_filter'] = np.eye(4, dtype=np.float32)
  with pytest.raises(ValueError, match='FIR filter'):
    torch_names.from_torch_state_dict(sd, 'D')
  with pytest.raises(ValueError, match="'G' or 'D'"):
    torch_names.to_torch_state_dict(d_vars['params'], None, 'E')
