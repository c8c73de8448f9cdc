"""Shared settings of the Diffusion-InsGen configs (the reference's `diffusion-insgen/train.py`).

The reference's defaults there differ from Diffusion-StyleGAN2's: T_max 500, uniform t, ADA 'bgc'
before the diffusion with p equal to the diffusion level (`--daug ADA`, uncapped: ada_maxp 1.0
here), ada_kimg 100, target 0.6; the contrastive heads and queues of `config.insgen`
(dgan_jax/families/insgen.py). `:smoke` gives tiny networks and a 4-step run (tests).
"""
from configs import base
from dgan_jax.families.insgen import get_insgen_config

# Variants shared by the InsGen configs: (diffusion on, insgen heads on).
METHODS = {
    'diffusion_insgen': (True, True),     # the default
    'insgen': (False, True),              # InsGen (ADA's own controller, no diffusion)
    'diffusion': (True, False),           # Diffusion-StyleGAN2 + ADA (--no_insgen)
}


def get_config(preset: str, resolution: int, target: float = 0.6):
  config = base.get_image_config(preset, resolution, source='zip', name='', target=target)
  config.model.family = 'insgen'
  config.insgen = get_insgen_config()
  config.diffusion.t_max = 500
  config.diffusion.ts_dist = 'uniform'
  config.diffusion.ada_kimg = 100.0
  config.augment.kind = 'ada'
  config.augment.ada_maxp = 1.0         # --daug ADA with ada_maxp None: p = the diffusion level
  config.augment.ada_kimg = 100.0       # InsGen without diffusion: ADA's own controller
  config.augment.ada_target = 0.6
  config.train.total_kimg = 25_000.0
  return config


def apply_variants(config, parts):
  """Applies a method (METHODS) and `smoke`; returns the parts it did not know."""
  rest = []
  for part in parts:
    if part in METHODS:
      config.diffusion.enabled, config.insgen.enabled = METHODS[part]
    elif part == 'smoke':
      base.apply_smoke(config)
      config.data.resolution = 32
    else:
      rest.append(part)
  return rest
