"""Diffusion-ProjectedGAN networks (reference `diffusion-projected-gan/pg_modules`) in flax.linen.

* `fastgan.FastGANGenerator`: --cfg fastgan / fastgan_lite (--cfg stylegan2 reuses
  dgan_jax.models.generator.Generator with the reference's settings);
* `discriminator.ProjectedDiscriminator`: frozen EfficientNet-lite0 features, feature-level
  diffusion, frozen random mixers (`projector.py`), four spectral-norm mini-discriminators;
* `config`: `projected_settings(cfg)`, `apply_feature_diffusion`, `build_generator`,
  `build_discriminator`, `backbone_variables`;
* `torch_names`: reference state-dict keys <-> our variables.

See docs/projected.md.
"""
from dgan_jax.models.projected.config import (apply_feature_diffusion, backbone_variables,
                                              build_discriminator, build_generator,
                                              projected_settings)
from dgan_jax.models.projected.discriminator import ProjectedDiscriminator
from dgan_jax.models.projected.fastgan import FastGANGenerator
from dgan_jax.models.projected.projector import install_backbone

__all__ = ['FastGANGenerator', 'ProjectedDiscriminator', 'apply_feature_diffusion',
           'backbone_variables', 'build_discriminator', 'build_generator', 'install_backbone',
           'projected_settings']
