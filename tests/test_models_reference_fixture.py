"""StyleGAN2 G and D against the reference's recorded outputs (tests/fixtures/stylegan2_reference.npz,
written by tests/fixtures/make_stylegan2_reference.py with the authors' code): the default suite's
parity check, which needs neither torch nor the reference mirror."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar10
from dgan_jax import families
from dgan_jax.models import torch_names
from dgan_jax.models.discriminator import Discriminator
from dgan_jax.models.generator import Generator

FIXTURE = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'stylegan2_reference.npz'
SMALL = dict(img_resolution=16, img_channels=3)
SYNTH = dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=256)


@pytest.fixture(scope='module')
def recorded():
  data = np.load(FIXTURE)
  return data, json.loads(str(data['meta']))


def state_dict(data, prefix):
  return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}


@pytest.mark.parametrize('i', range(3))
def test_generator_equals_recorded_reference(recorded, i):
  data, meta = recorded
  case = meta['G'][i]
  params, buffers = torch_names.from_torch_state_dict(state_dict(data, f'G{i}/sd/'), 'G')
  g = Generator(z_dim=8, w_dim=8, c_dim=case['c_dim'], **SMALL, mapping_layers=2, **SYNTH,
                architecture=case['architecture'])
  out = g.apply({'params': params, 'buffers': buffers}, jnp.asarray(data[f'G{i}/z']),
                jnp.asarray(data[f'G{i}/c']), truncation_psi=0.7, noise_mode='const')
  expected = data[f'G{i}/img']
  np.testing.assert_allclose(np.asarray(out), expected, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize('i', range(5))
def test_discriminator_equals_recorded_reference(recorded, i):
  """t-conditioned Ds (t_dim 1) and the vanilla stylegan2-ada D (t_dim 0) with and without labels."""
  data, meta = recorded
  case = meta['D'][i]
  params, _ = torch_names.from_torch_state_dict(state_dict(data, f'D{i}/sd/'), 'D')
  d = Discriminator(c_dim=case['c_dim'], **SMALL, architecture=case['architecture'], **SYNTH,
                    mbstd_group_size=2, t_conditioning=bool(case['t_dim']))
  out = d.apply({'params': params}, jnp.asarray(data[f'D{i}/img']), jnp.asarray(data[f'D{i}/c']),
                jnp.asarray(data[f'D{i}/t']))
  np.testing.assert_allclose(np.asarray(out), data[f'D{i}/logits'], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('enabled', [True, False])
def test_cifar_discriminator_parameter_count(recorded, enabled):
  """With diffusion the reference's D (23,085,056); without, stylegan2-ada's (t_dim = 0)."""
  _, meta = recorded
  config = cifar10.get_config()
  config.diffusion.enabled = enabled
  nets = families.build_networks(config)
  _, _, d_params, _ = jax.eval_shape(lambda: nets.init(jax.random.key(0), 2))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(d_params))
  assert count == meta['counts'][f'cifar_D_t{int(enabled)}']
  assert ('mapping' in d_params) == enabled


FP16_FIXTURE = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'stylegan2_fp16_reference.npz'
FP16_SYNTH = dict(channel_base=1024, channel_max=64, num_fp16_res=2, conv_clamp=256)


@pytest.mark.parametrize('dtype,rel_tol', [(jnp.float16, 3e-3), (jnp.bfloat16, 2e-2)])
def test_reduced_precision_matches_recorded_reference_fp16(dtype, rel_tol):
  """The recorded twin of test_models_vs_reference's reduced-precision check (fixture written by
  tests/fixtures/make_stylegan2_fp16_reference.py): our float16 / bfloat16 blocks against the
  reference's fp16 blocks, max error within 0.3% / 2% of the output scale."""
  data = np.load(FP16_FIXTURE)
  params, buffers = torch_names.from_torch_state_dict(state_dict(data, 'G/'), 'G')
  g = Generator(z_dim=64, w_dim=64, **SMALL, mapping_layers=2, **FP16_SYNTH,
                mixed_precision_dtype=dtype)
  out = g.apply({'params': params, 'buffers': buffers}, jnp.asarray(data['g_z']),
                jnp.zeros((4, 0)), noise_mode='const')
  expected = data['g_out'].transpose(0, 2, 3, 1)
  assert float(np.abs(np.asarray(out) - expected).max()) <= rel_tol * np.abs(expected).max()

  params, _ = torch_names.from_torch_state_dict(state_dict(data, 'D/'), 'D')
  d = Discriminator(**SMALL, architecture='resnet', **FP16_SYNTH, mbstd_group_size=4,
                    mixed_precision_dtype=dtype)
  out = d.apply({'params': params}, jnp.asarray(data['d_img'].transpose(0, 2, 3, 1)),
                jnp.zeros((4, 0)), jnp.asarray(data['d_t']))
  expected = data['d_out']
  assert float(np.abs(np.asarray(out) - expected).max()) <= rel_tol * np.abs(expected).max()
