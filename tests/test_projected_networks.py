"""Projected-GAN networks against the reference's `pg_modules`: G and D outputs (training and
evaluation mode), the BatchNorm / spectral-norm state after a training step, parameter counts for
every --cfg, and the state-dict mapping.

Recorded-output checks (tests/fixtures/projected_networks.npz, written by
tests/fixtures/make_projected_networks.py) run everywhere; the live checks rerun the reference
where torch, timm and the mirror are available."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import projected_helpers
from configs import base
from dgan_jax.models import summary
from dgan_jax.models import torch_names as sg2_names
from dgan_jax.models.projected import config as pconfig
from dgan_jax.models.projected import torch_names
from fixtures import make_projected_networks as script

FIXTURE = projected_helpers.FIXTURES / 'projected_networks.npz'
ATOL = 1e-4


@pytest.fixture(scope='module')
def recorded():
  return np.load(FIXTURE)


def _close(ours, expected, what):
  ours = np.asarray(ours, np.float64)
  err = float(np.abs(ours - expected).max())
  print(f'{what}: max abs error {err:.2e}, max |value| {np.abs(expected).max():.3g}')
  assert err <= ATOL, f'{what}: max abs error {err:.3g} (max |value| {np.abs(expected).max():.3g})'
  return err


def _generator_shapes_without_torch(case):
  """The reference G state-dict shapes from our tables (what the fixture script seeded)."""
  G = script.our_generator(case)
  if case['cfg'] == 'stylegan2':
    shapes = jax.eval_shape(lambda: G.init({'params': jax.random.key(0), 'noise': jax.random.key(1)},
                                           jnp.zeros((1, case['z_dim'])), None))
    flat = sg2_names.to_torch_state_dict(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                                      shapes['params']),
                                         jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                                      shapes['buffers']), 'G')
    return {k: v.shape for k, v in flat.items()}
  variables = jax.eval_shape(lambda: G.init({'params': jax.random.key(0), 'noise': jax.random.key(1)},
                                            jnp.zeros((1, case['z_dim'])),
                                            jnp.zeros((1, script.C_DIM))))
  flat = torch_names.to_torch(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables),
                              torch_names.generator_table(G))
  return {k: v.shape for k, v in flat.items()}


def _check_generator(case, name, ours, recorded_arrays):
  for key in ('train', 'eval'):
    if f'{name}/{key}' in recorded_arrays:
      _close(script.reduce_image(ours[key]), recorded_arrays[f'{name}/{key}'], f'{name} {key}')
  if f'{name}/w_avg' in recorded_arrays:
    _close(ours['w_avg'], recorded_arrays[f'{name}/w_avg'], f'{name} w_avg')
  if 'state' in ours:
    flat = torch_names.to_torch(ours['state'], torch_names.generator_table(script.our_generator(case)))
    prefix = f'{name}/state/'
    keys = [k for k in recorded_arrays if k.startswith(prefix)]
    assert keys
    for k in keys:
      _close(flat[k[len(prefix):]], recorded_arrays[k], k)


DEFAULT_G = ('fastgan_64', 'fastgan_lite_cond_128', 'stylegan2_32')


@pytest.mark.parametrize('name', [n if n in DEFAULT_G else pytest.param(n, marks=pytest.mark.slow)
                                  for n in script.G_CASES])
def test_generator_matches_recorded_reference(recorded, name):
  case = script.G_CASES[name]
  shapes = _generator_shapes_without_torch(case)
  state = script.generator_state(case, shapes)
  z, c = recorded[f'{name}/z'], recorded[f'{name}/c']
  ours, _ = script.run_ours_generator(case, script.our_generator_variables(case, state), z, c)
  _check_generator(case, name, ours, recorded)


def _discriminator_shapes_without_torch(case):
  D = script.our_discriminator(case)
  variables = jax.eval_shape(lambda: D.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                            jnp.zeros((1, script.C_DIM))))
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables)
  flat = torch_names.to_torch(zeros, torch_names.discriminator_table(D, backbone=True))
  return {k: v.shape for k, v in flat.items()}


def _check_discriminator(case, name, ours, recorded_arrays):
  for key in ('train', 'eval'):
    _close(ours[key], recorded_arrays[f'{name}/{key}'], f'{name} {key}')
  flat = torch_names.to_torch(ours['state'], torch_names.discriminator_table(
      script.our_discriminator(case)))
  prefix = f'{name}/state/'
  keys = [k for k in recorded_arrays if k.startswith(prefix)]
  assert keys
  for k in keys:
    _close(flat[k[len(prefix):]], recorded_arrays[k], k)


@pytest.mark.parametrize('name', ['fastgan_d', pytest.param('stylegan2_cond_last_d',
                                                            marks=pytest.mark.slow)])
def test_discriminator_matches_recorded_reference(recorded, name):
  case = script.D_CASES[name]
  state = script.discriminator_state(_discriminator_shapes_without_torch(case))
  # Backbone BatchNorm counters are not part of our tables (inference only): seeded but unused.
  variables = script.our_discriminator_variables(case, state)
  ours = script.run_ours_discriminator(case, variables, recorded[f'{name}/images'],
                                       recorded[f'{name}/c'], recorded[f'{name}/t_epl'],
                                       int(recorded[f'{name}/T']))
  _check_discriminator(case, name, ours, recorded)


def _config(cfg: str, res: int, cond: bool = False):
  config = base.get_base_config()
  config.data.resolution = res
  config.model.projected = pconfig.projected_settings(cfg)
  config.model.projected.cond = cond
  config.model.c_dim = 10 if cond else 0
  pconfig.apply_feature_diffusion(config.diffusion)
  return config


@pytest.mark.parametrize('cfg', script.COUNT_CFGS)
def test_parameter_counts_equal_the_reference(recorded, cfg, capsys):
  for res in script.COUNT_RESOLUTIONS:
    for cond in (False, True):
      if cond and res != 32:
        continue
      tag = f'{cfg}_{res}' + ('_cond' if cond else '')
      config = _config(cfg, res, cond)
      counts = summary.print_projected_tables(config)
      assert counts['G'] == int(recorded[f'counts/G_{tag}']), tag
      assert counts['D'] == int(recorded[f'counts/D_{tag}']), tag
      # The reference's feature network parameters = our frozen tree minus BN statistics.
      assert counts['D_frozen_parameters'] == int(recorded[f'counts/F_{tag}']), tag
  out = capsys.readouterr().out
  assert 'G params:' in out and 'D params:' in out


def test_state_dict_mapping_round_trips():
  case = script.D_CASES['stylegan2_cond_last_d']
  D = script.our_discriminator(case)
  table = torch_names.discriminator_table(D, backbone=True)
  shapes = _discriminator_shapes_without_torch(case)
  state = script.discriminator_state(shapes)
  variables = torch_names.from_torch(state, table)
  back = torch_names.to_torch(variables, table)
  assert list(back) == list(shapes)
  for k, v in back.items():
    np.testing.assert_array_equal(v, state[k].astype(v.dtype))
  # Without the backbone table the backbone keys must be ignored explicitly.
  small = torch_names.discriminator_table(D)
  with pytest.raises(ValueError, match='unexpected'):
    torch_names.from_torch(state, small)
  part = torch_names.from_torch(state, small, ignore_prefixes=('feature_network.pretrained.',))
  assert 'pretrained' not in part['frozen']['feature_network']
  with pytest.raises(ValueError, match='missing'):
    torch_names.from_torch({k: v for k, v in state.items() if 'disc' not in k}, table)


# ---------------------------------------------------------------------------------------------
# Live: the reference itself (torch, timm and the mirror).

@pytest.fixture(scope='module')
def pg(reference_projected):
  return reference_projected


@pytest.mark.parametrize('name', ['fastgan_cond_64'] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ('fastgan_lite_32', 'stylegan2_32')])
def test_generator_matches_live_reference(pg, name):
  case = script.G_CASES[name]
  shapes = script.generator_shapes(pg, case)
  assert {k: tuple(v) for k, v in _generator_shapes_without_torch(case).items()} == shapes
  state = script.generator_state(case, shapes)
  z, c = script.inputs(case)
  ours, noises = script.run_ours_generator(case, script.our_generator_variables(case, state), z, c)
  ref = script.run_reference_generator(pg, case, state, z, c, noises)
  arrays = {f'{name}/{k}': (script.reduce_image(v) if k in ('train', 'eval') else v)
            for k, v in ref.items() if k != 'state'}
  arrays.update({f'{name}/state/{k}': v for k, v in ref.get('state', {}).items()
                 if k.endswith(('running_mean', 'running_var', 'weight_u', 'weight_v'))})
  _check_generator(case, name, ours, arrays)


LIVE_ONLY_D_CASES = {
    'proj0_d': dict(separable=False, cond=False, d_pos='first', proj_type=0, patch=False),
    'proj1_cond_d': dict(separable=False, cond=True, d_pos='first', proj_type=1, patch=False),
    'patch_separable_d': dict(separable=True, cond=False, d_pos='first', proj_type=2, patch=True),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(script.D_CASES) + sorted(LIVE_ONLY_D_CASES))
def test_discriminator_matches_live_reference(pg, name):
  case = {**script.D_CASES, **LIVE_ONLY_D_CASES}[name]
  shapes = script.discriminator_shapes(pg, case)
  ours_shapes = {k: tuple(v) for k, v in _discriminator_shapes_without_torch(case).items()}
  assert ours_shapes == {k: v for k, v in shapes.items()
                         if not (k.startswith('feature_network.pretrained')
                                 and k.endswith('num_batches_tracked'))}
  state = script.discriminator_state(shapes)
  images, c = script.d_inputs()
  t_epl, T = script.reference_level(pg)
  ref = script.run_reference_discriminator(pg, case, state, images, c, t_epl, T,
                                           script.diffusion_draws(case, t_epl))
  ours = script.run_ours_discriminator(case, script.our_discriminator_variables(case, state),
                                       images, c, t_epl, T)
  arrays = {f'{name}/train': ref['train'], f'{name}/eval': ref['eval']}
  arrays.update({f'{name}/state/{k}': v for k, v in ref['state'].items()
                 if k.startswith('discriminator.')
                 and k.endswith(('running_mean', 'running_var', 'weight_u', 'weight_v'))})
  _check_discriminator(case, name, ours, arrays)
  print(name, 'max |logit|', float(np.abs(ref['train']).max()), 'max error',
        float(np.abs(ours['train'] - ref['train']).max()))


def test_state_dict_keys_and_order_match_the_reference(pg):
  """Every key of the reference's G and D state dicts, in order: all FastGAN variants; D as
  train.py builds it for each --cfg (all D variants: the slow test below)."""
  _check_keys(pg, d_grid=[(2, False, False, False), (2, True, False, False)])


@pytest.mark.slow
def test_state_dict_keys_and_order_match_the_reference_every_d_variant(pg):
  _check_keys(pg, d_grid=[(p, s, q, c) for p in (0, 1, 2) for s in (False, True)
                          for q in (False, True) for c in (False, True)])


def _check_keys(pg, d_grid):
  for cond in (False, True):
    for cfg in ('fastgan', 'fastgan_lite'):
      for res in ((32, 256, 512, 1024) if not cond else (32, 128, 256)):
        case = dict(cfg=cfg, res=res, ngf=16, z_dim=8, cond=cond)
        keys = list(script.reference_generator(pg, case).state_dict())
        table = torch_names.generator_table(script.our_generator(case))
        assert [f'{r.torch}.{leaf}' for r in table for leaf, *_ in torch_names.LEAVES[r.kind]] \
            == keys, (cfg, res, cond)
  for proj_type, separable, patch, cond in d_grid:
    case = dict(separable=separable, cond=cond, d_pos='first', proj_type=proj_type, patch=patch)
    keys = [k for k in script.reference_discriminator(pg, case).state_dict()
            if not (k.startswith('feature_network.pretrained')
                    and k.endswith('num_batches_tracked'))]
    table = torch_names.discriminator_table(script.our_discriminator(case), backbone=True)
    assert [f'{r.torch}.{leaf}' for r in table
            for leaf, *_ in torch_names.LEAVES[r.kind]] == keys, case
