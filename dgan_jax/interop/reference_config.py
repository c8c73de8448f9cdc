"""dgan_jax config <-> the constructor kwargs of the reference's `Generator` / `Discriminator`.

The reference builds its networks as `Generator(**G_kwargs)` and `Discriminator(**D_kwargs)`
(`training/networks.py`); persistent pickles keep those kwargs as `_init_kwargs`. These helpers
write the kwargs for an exported run and read them back into `config.model` on import.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections

from dgan_jax import errors

# Reference defaults for kwargs a pickle may leave out (training/networks.py signatures).
_G_MAPPING_DEFAULTS = dict(num_layers=8, lr_multiplier=0.01, w_avg_beta=0.995)
_G_SYNTHESIS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_fp16_res=0,
                             conv_clamp=None, architecture='skip')
_D_DEFAULTS = dict(t_dim=1, architecture='resnet', channel_base=32768, channel_max=512,
                   num_fp16_res=0, conv_clamp=None, cmap_dim=None)
_D_MAPPING_DEFAULTS = dict(num_layers=8, lr_multiplier=0.01)
_D_EPILOGUE_DEFAULTS = dict(mbstd_group_size=4, mbstd_num_channels=1)

# The config.model fields a network's shapes and outputs depend on (compared on import/restore).
MODEL_FIELDS = ('c_dim', 'num_fp16_res', 'conv_clamp', 'G.z_dim', 'G.w_dim', 'G.mapping_layers',
                'G.mapping_lr_multiplier', 'G.w_avg_beta', 'G.channel_base', 'G.channel_max',
                'G.architecture', 'D.architecture', 'D.channel_base', 'D.channel_max',
                'D.mbstd_group_size', 'D.mbstd_num_channels', 'D.mapping_layers', 'D.cmap_dim',
                'D.t_embedding')


def _clamp(value) -> float | None:
  return float(value) if value else None


def generator_kwargs(config: ml_collections.ConfigDict) -> dict:
  """`Generator(**kwargs)` arguments of the reference for `config`."""
  m, g = config.model, config.model.G
  return dict(
      z_dim=int(g.z_dim), c_dim=int(m.c_dim), w_dim=int(g.w_dim),
      img_resolution=int(config.data.resolution), img_channels=int(config.data.channels),
      mapping_kwargs=dict(num_layers=int(g.mapping_layers),
                          lr_multiplier=float(g.mapping_lr_multiplier),
                          w_avg_beta=float(g.w_avg_beta)),
      synthesis_kwargs=dict(channel_base=int(g.channel_base), channel_max=int(g.channel_max),
                            num_fp16_res=int(m.num_fp16_res), conv_clamp=_clamp(m.conv_clamp),
                            architecture=str(g.architecture)))


def discriminator_kwargs(config: ml_collections.ConfigDict) -> dict:
  """`Discriminator(**kwargs)` arguments of the reference (t-conditioned: t_dim=1; the vanilla D of
  a run without diffusion: t_dim=0, which is stylegan2-ada's discriminator)."""
  m, d = config.model, config.model.D
  if d.t_embedding != 'raw':
    raise errors.UserError(
        f'config.model.D.t_embedding={d.t_embedding!r}: the reference discriminator only takes '
        "the raw integer t (t_embedding='raw'), so this D has no reference equivalent; export "
        'without it (--with_d=false).')
  return dict(
      c_dim=int(m.c_dim), img_resolution=int(config.data.resolution),
      img_channels=int(config.data.channels), t_dim=int(bool(config.diffusion.enabled)),
      architecture=str(d.architecture),
      channel_base=int(d.channel_base), channel_max=int(d.channel_max),
      num_fp16_res=int(m.num_fp16_res), conv_clamp=_clamp(m.conv_clamp),
      cmap_dim=int(d.cmap_dim) if d.cmap_dim else None, block_kwargs={},
      mapping_kwargs=dict(num_layers=int(d.mapping_layers)),
      epilogue_kwargs=dict(mbstd_group_size=int(d.mbstd_group_size or 0) or None,
                           mbstd_num_channels=int(d.mbstd_num_channels)))


def training_set_kwargs(config: ml_collections.ConfigDict) -> dict:
  """The reference's `training_set_kwargs` (its ImageFolderDataset) for the run's data."""
  data = config.data
  return dict(class_name='training.dataset.ImageFolderDataset',
              path=str(data.path or data.name), use_labels=bool(data.use_labels),
              max_size=int(data.max_images) or None, xflip=bool(data.xflip),
              resolution=int(data.resolution), random_seed=int(config.seed))


def _with_defaults(kwargs: Mapping | None, defaults: Mapping) -> dict:
  out = dict(defaults)
  out.update({k: v for k, v in dict(kwargs or {}).items()})
  return out


def model_from_kwargs(config: ml_collections.ConfigDict, g_kwargs: Mapping,
                      d_kwargs: Mapping | None) -> None:
  """Writes the reference G (and D) kwargs into `config.model` / `config.data` in place.

  `d_kwargs` None keeps config.model.D as it is (a stylegan2-ada D is not t-conditioned).
  """
  g_map = _with_defaults(g_kwargs.get('mapping_kwargs'), _G_MAPPING_DEFAULTS)
  g_syn = _with_defaults(g_kwargs.get('synthesis_kwargs'), _G_SYNTHESIS_DEFAULTS)
  m = config.model
  config.data.resolution = int(g_kwargs['img_resolution'])
  config.data.channels = int(g_kwargs['img_channels'])
  m.c_dim = int(g_kwargs.get('c_dim', 0))
  config.data.use_labels = m.c_dim > 0
  m.num_fp16_res = int(g_syn['num_fp16_res'])
  m.conv_clamp = float(g_syn['conv_clamp'] or 0.0)
  m.G.z_dim = int(g_kwargs.get('z_dim', 512))
  m.G.w_dim = int(g_kwargs.get('w_dim', 512))
  m.G.mapping_layers = int(g_map['num_layers'])
  m.G.mapping_lr_multiplier = float(g_map['lr_multiplier'])
  m.G.w_avg_beta = float(g_map['w_avg_beta'])
  m.G.channel_base = int(g_syn['channel_base'])
  m.G.channel_max = int(g_syn['channel_max'])
  m.G.architecture = str(g_syn['architecture'])
  if d_kwargs is None:
    return
  d = _with_defaults(d_kwargs, _D_DEFAULTS)
  d_map = _with_defaults(d.get('mapping_kwargs'), _D_MAPPING_DEFAULTS)
  d_epi = _with_defaults(d.get('epilogue_kwargs'), _D_EPILOGUE_DEFAULTS)
  problems = []
  if int(d['t_dim']) not in (0, 1):
    problems.append(f"t_dim={d['t_dim']} (dgan_jax's raw t embedding has t_dim 1; 0 is the "
                    'vanilla D)')
  if int(d['num_fp16_res']) != m.num_fp16_res or _clamp(d['conv_clamp']) != _clamp(m.conv_clamp):
    problems.append(f"num_fp16_res/conv_clamp differ between G ({m.num_fp16_res}, "
                    f"{m.conv_clamp}) and D ({d['num_fp16_res']}, {d['conv_clamp']})")
  if float(d_map['lr_multiplier']) != 0.01:
    problems.append(f"D mapping lr_multiplier={d_map['lr_multiplier']} (dgan_jax uses 0.01)")
  if problems:
    raise errors.UserError('The pickle\'s discriminator cannot be represented in dgan_jax: '
                     + '; '.join(problems) + '. Import G only (--init_d=fresh).')
  m.D.architecture = str(d['architecture'])
  m.D.channel_base = int(d['channel_base'])
  m.D.channel_max = int(d['channel_max'])
  m.D.cmap_dim = int(d['cmap_dim'] or 0)
  m.D.mapping_layers = int(d_map['num_layers'])
  m.D.mbstd_group_size = int(d_epi['mbstd_group_size'] or 0)
  m.D.mbstd_num_channels = int(d_epi['mbstd_num_channels'])
  m.D.t_embedding = 'raw'
  if int(d['t_dim']) == 0:           # A t-less D: a run without diffusion (vanilla StyleGAN2).
    config.diffusion.enabled = False


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def model_differences(expected: ml_collections.ConfigDict, actual: ml_collections.ConfigDict,
                      fields=MODEL_FIELDS) -> list[str]:
  """`model.X: a != b` for every network-defining field that differs (plus data shape)."""
  diffs = []
  for name in ('resolution', 'channels'):
    if expected.data[name] != actual.data[name]:
      diffs.append(f'data.{name}: {expected.data[name]} != {actual.data[name]}')
  for field in fields:
    a, b = _get(expected.model, field), _get(actual.model, field)
    if (a or 0) != (b or 0):
      diffs.append(f'model.{field}: {a!r} != {b!r}')
  return diffs
