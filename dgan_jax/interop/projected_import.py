"""Import of the authors' Diffusion-ProjectedGAN pickles (`diffusion-projectedgan-*.pkl`).

The released snapshots hold G, D and G_ema of `diffusion-projected-gan/` in the reference's
persistence format, read as data by interop/torch_pickle.py (no pickled code runs). A pickle is
projected when its D has the `feature_network.` keys of ProjectedDiscriminator, or its generator
the FastGAN `synthesis.init.` keys. The config comes from the pickle's constructor kwargs (--cfg,
--cond, resolution, the D's backbone_kwargs) on top of configs/projected.py's settings for the
resolution (target: CIFAR-10 0.45 at 32, STL-10 0.6 at 64, LSUN 0.2 at 256); the backbone is the
one stored in the pickle's D (`model.projected.backbone = 'checkpoint'`: no weight file needed).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from dgan_jax import errors
from dgan_jax.models import torch_names as sg2_names
from dgan_jax.models.projected import torch_names

TARGETS = {32: 0.45, 64: 0.6, 256: 0.2}   # paper Table 4 by dataset resolution


def is_projected(ref) -> bool:
  """Whether a ReferencePickle holds Diffusion-ProjectedGAN networks."""
  d_keys = ref.state_dicts.get('D', {})
  g_keys = ref.state_dicts.get('G_ema', ref.state_dicts.get('G', {}))
  return (any(k.startswith('feature_network.') for k in d_keys)
          or any(k.startswith('synthesis.init.') for k in g_keys))


def config_for(ref, config: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """The projected config of the pickle's networks (with `config`, its training settings)."""
  from configs import projected  # pylint: disable=import-outside-toplevel
  g_name = 'G_ema' if 'G_ema' in ref.init_kwargs else 'G'
  g = ref.init_kwargs[g_name]
  if 'img_resolution' not in g:
    raise errors.UserError(f"The pickle's {g_name} has no constructor kwargs (_init_kwargs); only "
                           'networks saved by the reference code can be imported.')
  res = int(g['img_resolution'])
  g_keys = ref.state_dicts[g_name]
  fastgan = any(k.startswith('synthesis.init.') for k in g_keys)
  lite = bool((g.get('synthesis_kwargs') or {}).get('lite', False))
  variant = ('lite' if lite else '') if fastgan else 'stylegan2'
  if config is None:
    config = projected.get_config('imported', res, TARGETS.get(res, 0.6), variant)
  else:
    config = ml_collections.ConfigDict(config.to_dict())
  s = config.model.projected
  s.cfg = ('fastgan_lite' if lite else 'fastgan') if fastgan else 'stylegan2'
  s.cond = bool(g.get('cond', False))
  s.z_dim = int(g.get('z_dim', s.z_dim))
  if fastgan:
    s.ngf = int(g.get('ngf', s.ngf))
  else:
    s.w_dim = int(g.get('w_dim', s.w_dim))
    s.cbase, s.cmax = int(g.get('channel_base', s.cbase)), int(g.get('channel_max', s.cmax))
    s.map_depth = int((g.get('mapping_kwargs') or {}).get('num_layers', s.map_depth))
  d = ref.init_kwargs.get('D') or {}
  backbone = d.get('backbone_kwargs') or {}
  for ours, theirs in (('d_pos', 'd_pos'), ('cout', 'cout'), ('expand', 'expand'),
                       ('proj_type', 'proj_type'), ('num_discs', 'num_discs'),
                       ('separable', 'separable')):
    if theirs in backbone:
      s[ours] = type(s[ours])(backbone[theirs])
  if 'noise_sd' in backbone:
    config.diffusion.noise_std = float(backbone['noise_sd'])
  if 'interp224' in d and bool(d['interp224']) != (res < 224):   # train.py: res < 224 ('auto')
    raise errors.UserError(f"The pickle's D has interp224={d['interp224']} at resolution {res}; "
                           "the reference's train.py (and model.projected.interp224='auto') "
                           'resize only below 224.')
  s.backbone = 'checkpoint'
  config.data.resolution = res
  config.data.channels = int(g.get('img_channels', 3))
  config.model.c_dim = int(g.get('c_dim', 0))
  tsk = ref.training_set_kwargs
  if tsk.get('path'):
    config.data.source, config.data.path = 'zip', str(tsk['path'])
  config.data.use_labels = bool(tsk.get('use_labels', config.model.c_dim > 0))
  return config


def build_state(ref, config: ml_collections.ConfigDict):
  """(train state, step) with the pickle's G, G_ema and D (backbone and mixers included), fresh
  Adam moments, the image count and the level p of `progress` (no forward pass, no compile)."""
  from dgan_jax import diffusion, families, train  # pylint: disable=import-outside-toplevel
  from dgan_jax.import_torch import _like_template as like, restore_level  # (imports this module)
  from dgan_jax.families.base import init_augment_state  # pylint: disable=import-outside-toplevel
  from dgan_jax.train_state import TrainState  # pylint: disable=import-outside-toplevel
  family = families.get(config)
  nets = family.build_networks(config)
  g_tx, d_tx = train.make_optimizers(config)
  shapes = jax.eval_shape(lambda: family.init_state(config, nets, g_tx, d_tx))
  sds = dict(ref.state_dicts)
  for name in ('G', 'G_ema'):
    sds.setdefault(name, sds.get('G_ema', sds.get('G')))
  if 'D' not in sds:
    raise errors.UserError('The pickle has no discriminator D; a projected run needs it (its '
                           'mixers and backbone are part of D).')

  def generator(sd):
    try:
      if nets.has_buffers:
        return sg2_names.from_torch_state_dict(sd, 'G')
      variables = torch_names.from_torch(sd, torch_names.generator_table(nets.G))
    except (ValueError, KeyError) as e:
      raise errors.UserError(f"The pickle's generator does not match {config.model.projected.cfg} "
                             f'at {config.data.resolution}: {e}') from None
    return variables.pop('params'), variables

  g_params, _ = generator(sds['G'])
  g_ema_params, g_buffers = generator(sds['G_ema'])    # G_ema's buffers: what generation uses
  try:
    d_vars = torch_names.from_torch(sds['D'], torch_names.discriminator_table(nets.D, backbone=True))
  except ValueError as e:
    raise errors.UserError(f"The pickle's discriminator does not match the config: {e}") from None
  g_params, g_ema_params = like(g_params, shapes.g_params), like(g_ema_params, shapes.g_params)
  d_params = like(d_vars.pop('params'), shapes.d_params)
  nimg = int(ref.progress.get('cur_nimg') or 0)
  if nimg >= 2**31:
    raise errors.UserError(f'cur_nimg={nimg} does not fit the int32 image counter.')
  step = nimg // config.train.batch_size
  _, ctrl_key, run_key = jax.random.split(jax.random.key(config.seed), 3)   # as init_state
  num_pools = config.train.batch_size // config.train.batch_gpu
  ctrl = restore_level(diffusion.init_state(ctrl_key, config.diffusion, num_pools),
                       float(ref.progress.get('cur_p') or 0.0), config.diffusion)
  state = TrainState(
      step=jnp.asarray(step, jnp.int32), images_seen=jnp.asarray(nimg, jnp.int32),
      g_params=g_params, g_buffers=like(g_buffers, shapes.g_buffers), g_ema_params=g_ema_params,
      d_params=d_params, d_buffers=like(d_vars, shapes.d_buffers),
      g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params), diffusion=ctrl,
      augment=init_augment_state(config, ctrl), pl_mean=jnp.zeros((), jnp.float32), key=run_key,
      extra=family.init_extra(config, nets))
  return state, step
