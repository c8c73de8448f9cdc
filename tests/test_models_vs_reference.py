"""Numerical parity with the authors' PyTorch networks (run on CPU in float32).

Loads `training/networks.py` of the reference repository (a git mirror; path from
$DGAN_REFERENCE_REPO, default ../.mirror/Zhendong-Wang+Diffusion-GAN/repo beside the checkout),
copies its random weights into dgan_jax through `torch_names.from_torch_state_dict`, and compares
outputs. Skipped when torch or the mirror is missing.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from reference_code import perturb
from dgan_jax.models import torch_names
from dgan_jax.models.discriminator import Discriminator
from dgan_jax.models.generator import Generator

torch = pytest.importorskip('torch')
# The reference's torch_utils uses distutils version classes.
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

SMALL = dict(img_resolution=16, img_channels=3)
SYNTH = dict(channel_base=256, channel_max=32, num_fp16_res=0, conv_clamp=256)


@pytest.fixture(scope='module')
def networks(reference_networks):
  return reference_networks


def nhwc(x):
  return x.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize('architecture', ['skip', 'resnet', 'orig'])
@pytest.mark.parametrize('c_dim', [0, 3])
def test_generator_matches_reference(networks, architecture, c_dim):
  ref = perturb(networks.Generator(z_dim=16, w_dim=16, c_dim=c_dim, **SMALL,
                                   mapping_kwargs={'num_layers': 2},
                                   synthesis_kwargs={**SYNTH, 'architecture': architecture}))
  params, buffers = torch_names.from_torch_state_dict(ref.state_dict(), 'G')
  assert list(torch_names.to_torch_state_dict(params, buffers, 'G')) == list(ref.state_dict())
  g = Generator(z_dim=16, w_dim=16, c_dim=c_dim, **SMALL, mapping_layers=2, **SYNTH,
                architecture=architecture)
  v = {'params': params, 'buffers': buffers}
  z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
  c = np.random.default_rng(1).standard_normal((4, c_dim)).astype(np.float32)
  tc = torch.from_numpy(c) if c_dim else None
  ref.eval()
  for psi, cutoff in ((1.0, None), (0.6, None), (0.5, 3)):
    expected = nhwc(ref(torch.from_numpy(z), tc, truncation_psi=psi, truncation_cutoff=cutoff,
                        noise_mode='const', force_fp32=True))
    out = g.apply(v, jnp.asarray(z), jnp.asarray(c), truncation_psi=psi,
                  truncation_cutoff=cutoff, noise_mode='const')
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-5 * np.abs(expected).max())
  # Training-mode mapping updates w_avg with the same rule.
  ref.train()
  ref.mapping(torch.from_numpy(z), tc)
  _, state = g.apply(v, jnp.asarray(z), jnp.asarray(c), update_w_avg=True, method='mapping',
                     mutable=['buffers'])
  np.testing.assert_allclose(state['buffers']['mapping']['w_avg'],
                             ref.mapping.w_avg.numpy(), atol=1e-5)


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
@pytest.mark.parametrize('c_dim', [0, 3])
def test_discriminator_matches_reference(networks, architecture, c_dim):
  ref = perturb(networks.Discriminator(c_dim=c_dim, **SMALL, architecture=architecture, **SYNTH,
                                       epilogue_kwargs={'mbstd_group_size': 2}))
  params, buffers = torch_names.from_torch_state_dict(ref.state_dict(), 'D')
  assert not buffers
  assert list(torch_names.to_torch_state_dict(params, None, 'D')) == list(ref.state_dict())
  d = Discriminator(c_dim=c_dim, **SMALL, architecture=architecture, **SYNTH,
                    mbstd_group_size=2)
  img = np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32)
  c = np.random.default_rng(3).standard_normal((4, c_dim)).astype(np.float32)
  t = np.array([0, 7, 120, 999])
  expected = ref(torch.from_numpy(img), torch.from_numpy(c) if c_dim else None,
                 torch.from_numpy(t)[:, None], force_fp32=True).detach().numpy()
  out = d.apply({'params': params}, jnp.asarray(img.transpose(0, 2, 3, 1)), jnp.asarray(c),
                jnp.asarray(t))
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('dtype,rel_tol', [(jnp.float16, 3e-3), (jnp.bfloat16, 2e-2)])
def test_reduced_precision_matches_reference_fp16(networks, dtype, rel_tol):
  """Reference fp16 blocks (CPU) vs our float16 / bfloat16 blocks: max error relative to the
  output scale within 0.3% (float16) / 2% (bf16). Float16 rounding noise decides the float16
  figure: D's error against the reference's fp16 was 0.19% of the output scale with XLA:CPU's
  YNNPACK convolutions and 0.26% with its Eigen ones (dgan_jax/xla_cpu.py; the same float32
  results to 1e-6), against the reference's own fp16-vs-fp32 gap of 0.09%."""
  torch.manual_seed(0)
  synth = {**SYNTH, 'channel_base': 1024, 'channel_max': 64, 'num_fp16_res': 2}
  ref_g = networks.Generator(z_dim=64, w_dim=64, c_dim=0, **SMALL,
                             mapping_kwargs={'num_layers': 2}, synthesis_kwargs=synth).eval()
  params, buffers = torch_names.from_torch_state_dict(ref_g.state_dict(), 'G')
  z = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
  expected = nhwc(ref_g(torch.from_numpy(z), None, noise_mode='const'))
  g = Generator(z_dim=64, w_dim=64, **SMALL, mapping_layers=2, **synth,
                mixed_precision_dtype=dtype)
  out = g.apply({'params': params, 'buffers': buffers}, jnp.asarray(z), jnp.zeros((4, 0)),
                noise_mode='const')
  assert float(np.abs(np.asarray(out) - expected).max()) <= rel_tol * np.abs(expected).max()

  ref_d = networks.Discriminator(c_dim=0, **SMALL, architecture='resnet', **synth,
                                 epilogue_kwargs={'mbstd_group_size': 4}).eval()
  params, _ = torch_names.from_torch_state_dict(ref_d.state_dict(), 'D')
  img = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
  t = np.array([1, 5, 50, 500])
  expected = ref_d(torch.from_numpy(img), None, torch.from_numpy(t)[:, None]).detach().numpy()
  d = Discriminator(**SMALL, architecture='resnet', **synth, mbstd_group_size=4,
                    mixed_precision_dtype=dtype)
  out = d.apply({'params': params}, jnp.asarray(img.transpose(0, 2, 3, 1)), jnp.zeros((4, 0)),
                jnp.asarray(t))
  assert float(np.abs(np.asarray(out) - expected).max()) <= rel_tol * np.abs(expected).max()


@pytest.mark.parametrize('c_dim', [0, 3])
def test_vanilla_discriminator_matches_reference_t_dim_0(networks, c_dim):
  """t_conditioning=False is the reference D with t_dim = 0, i.e. stylegan2-ada's D."""
  ref = perturb(networks.Discriminator(c_dim=c_dim, t_dim=0, **SMALL, architecture='resnet',
                                       **SYNTH, epilogue_kwargs={'mbstd_group_size': 2}))
  params, _ = torch_names.from_torch_state_dict(ref.state_dict(), 'D')
  d = Discriminator(c_dim=c_dim, **SMALL, architecture='resnet', **SYNTH, mbstd_group_size=2,
                    t_conditioning=False)
  img = np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32)
  c = np.random.default_rng(3).standard_normal((4, c_dim)).astype(np.float32)
  expected = ref(torch.from_numpy(img), torch.from_numpy(c) if c_dim else None,
                 torch.zeros(4, 0), force_fp32=True).detach().numpy()
  out = d.apply({'params': params}, jnp.asarray(img.transpose(0, 2, 3, 1)), jnp.asarray(c),
                jnp.zeros((4,), jnp.int32))
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-5)
  assert list(torch_names.to_torch_state_dict(params, None, 'D')) == list(ref.state_dict())
