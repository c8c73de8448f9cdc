"""Image augmentation of the discriminator's inputs (issue 10): ADA, DiffAugment and p's controller.

`augment_images(key, images, p, cfg)` is the one call the training step needs; `state` holds p.
"""
from dgan_jax.augment.pipeline import KINDS, ada_spec, augment_images, validate_config

__all__ = ['KINDS', 'ada_spec', 'augment_images', 'validate_config']
