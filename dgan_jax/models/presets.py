"""The reference training presets (`train.py` cfg_specs) as config values.

`apply_preset(config, name)` fills `config.model` (G/D constructor settings, precision) and the
training fields the reference derives from the preset (learning rates, R1 gamma, batch sizes,
EMA, length, path-length/style-mixing settings) for `config.data.resolution`.
"""
import ml_collections

from dgan_jax import errors

# ref_gpus, kimg, mb (global batch), mbstd, fmaps, lrate, gamma, ema (kimg), ramp, map (G depth).
# -1 entries of 'auto' are derived from the resolution and the GPU count (see _auto_spec).
PRESETS = {
    'auto':      dict(ref_gpus=-1, kimg=25000, mb=-1, mbstd=-1, fmaps=-1, lrate=-1, gamma=-1,
                      ema=-1, ramp=0.05, map=2),
    'stylegan2': dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10,
                      ema=10, ramp=None, map=8),
    'paper256':  dict(ref_gpus=4, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1,
                      ema=20, ramp=None, map=8),
    'paper512':  dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5,
                      ema=20, ramp=None, map=8),
    'paper1024': dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2,
                      ema=10, ramp=None, map=8),
    'cifar':     dict(ref_gpus=4, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025,
                      gamma=0.01, ema=500, ramp=0.05, map=2),
    'stl10':     dict(ref_gpus=4, kimg=50000, mb=64, mbstd=32, fmaps=1, lrate=0.0025,
                      gamma=0.05, ema=500, ramp=0.05, map=2),
}
# The resolution each fixed preset was designed for (informational; 'auto' adapts).
PRESET_RESOLUTIONS = {'cifar': 32, 'stl10': 64, 'paper256': 256, 'paper512': 512,
                      'paper1024': 1024, 'stylegan2': 1024}


def _auto_spec(resolution: int, num_gpus: int) -> dict:
  """The reference's resolution- and GPU-count-dependent 'auto' values."""
  spec = dict(PRESETS['auto'])
  mb = max(min(num_gpus * min(4096 // resolution, 32), 64), num_gpus)
  spec.update(ref_gpus=num_gpus, mb=mb, mbstd=min(mb // num_gpus, 4),
              fmaps=1 if resolution >= 512 else 0.5,
              lrate=0.002 if resolution >= 1024 else 0.0025,
              gamma=0.0002 * resolution ** 2 / mb, ema=mb * 10 / 32)
  return spec


def preset_spec(name: str, resolution: int, num_gpus: int = 1) -> dict:
  """The resolved preset row (reference semantics); num_gpus only matters for 'auto'."""
  if name not in PRESETS:
    raise errors.UserError(f'Unknown preset {name!r}; use one of {sorted(PRESETS)}.')
  if name == 'auto':
    if num_gpus < 1:
      raise ValueError(f'num_gpus must be >= 1, got {num_gpus}.')
    return _auto_spec(resolution, num_gpus)
  return dict(PRESETS[name])


def generator_settings(spec: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      z_dim=512, w_dim=512, mapping_layers=spec['map'], mapping_lr_multiplier=0.01,
      w_avg_beta=0.995, channel_base=int(spec['fmaps'] * 32768), channel_max=512,
      architecture='skip'))


def discriminator_settings(name: str, spec: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      architecture='orig' if name == 'cifar' else 'resnet',
      channel_base=int(spec['fmaps'] * 32768), channel_max=512,
      mbstd_group_size=spec['mbstd'], mbstd_num_channels=1,
      mapping_layers=8,       # D's t/label mapping keeps the MappingNetwork default depth.
      cmap_dim=0,             # 0 = channels at 4x4 (the reference default).
      t_embedding='raw',      # raw (reference) | scaled (t / t_max) | sinusoidal.
      t_embed_dim=128))       # Width of the sinusoidal embedding.


def apply_preset(config: ml_collections.ConfigDict, name: str,
                 num_gpus: int = 1) -> ml_collections.ConfigDict:
  """Fill config.model and the preset-derived optim/loss/train fields; returns config.

  Uses config.data.resolution. `num_gpus` is the reference's GPU count and only changes 'auto'
  (batch = max(min(gpus * min(4096 // res, 32), 64), gpus), mbstd = min(batch // gpus, 4)).
  """
  spec = preset_spec(name, config.data.resolution, num_gpus)
  model = config.model
  model.preset = name
  model.G = generator_settings(spec)
  model.D = discriminator_settings(name, spec)
  model.mixed_precision = 'auto'   # auto | bfloat16 | float16 | float32.
  model.num_fp16_res = 4           # Reduced-precision blocks: the 4 highest resolutions (>= 8).
  model.conv_clamp = 256.0         # 0 disables the activation clamp (reference --fp32).
  if 'c_dim' not in model:
    model.c_dim = 0                # 0 = unconditional; the data pipeline sets the label count.

  config.optim.g_lr = spec['lrate']
  config.optim.d_lr = spec['lrate']
  config.loss.r1_gamma = float(spec['gamma'])
  config.loss.pl_weight = 0.0 if name == 'cifar' else 2.0
  config.loss.style_mixing_prob = 0.0 if name == 'cifar' else 0.9
  config.loss.pl_batch_shrink = 2
  config.loss.pl_decay = 0.01
  config.train.batch_size = spec['mb']
  config.train.batch_gpu = spec['mb'] // spec['ref_gpus']
  config.train.total_kimg = spec['kimg']
  config.train.ema_kimg = float(spec['ema'])
  config.train.ema_rampup = float(spec['ramp'] or 0.0)   # 0 = no ramp-up (reference None).
  return config
