"""Diffusion-StyleGAN2 (the authors' pixel-level code, on stylegan2-ada-pytorch) as a model family.

Networks from dgan_jax/models (the reference presets); the default phases and losses of
dgan_jax/steps.py: non-saturating loss, lazy R1 through the diffusion, optional path length.
"""
from __future__ import annotations

import ml_collections

from dgan_jax.families.base import ImageFamily
from dgan_jax.networks import Networks


class StyleGAN2Family(ImageFamily):
  name = 'stylegan2'

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    if 'G' not in config.model or 'D' not in config.model:
      return ['config.model has no G/D settings: start from configs/base.get_image_config or call '
              'dgan_jax.models.presets.apply_preset(config, name).']
    return []

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    from dgan_jax.models import build_models
    G, D = build_models(config)
    res, ch = config.data.resolution, config.data.channels
    return Networks(G=G, D=D, z_dim=config.model.G.z_dim, c_dim=config.model.get('c_dim', 0),
                    sample_shape=(res, res, ch), has_buffers=True)


FAMILY = StyleGAN2Family()
