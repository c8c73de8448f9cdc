"""Model families on one training loop: `config.model.family` picks networks, losses and phases.

Each family lives in its own module and exposes `FAMILY` (see families/base.py for the interface);
this registry maps names to modules, imported on first use. A module holding several families
names the one it means as 'module:ATTRIBUTE' (the small GANs share families/small_gans.py).
"""
from __future__ import annotations

import importlib

import ml_collections

from dgan_jax.families.base import Family, ImageFamily, Steps

FAMILIES = {
    'toy': 'dgan_jax.families.toy',
    'stylegan2': 'dgan_jax.families.stylegan2',
    'insgen': 'dgan_jax.families.insgen',
    'projected': 'dgan_jax.families.projected',
    'dcgan': 'dgan_jax.families.small_gans:DCGAN',
    'sngan': 'dgan_jax.families.small_gans:SNGAN',
}
# Configs saved before families existed name an experiment instead.
_LEGACY_EXPERIMENTS = {'toy': 'toy', 'image': 'stylegan2'}

__all__ = ['FAMILIES', 'Family', 'ImageFamily', 'Steps', 'build_networks', 'family_name', 'get']


def family_name(config: ml_collections.ConfigDict) -> str:
  """`config.model.family` (or the family of a legacy `config.experiment`)."""
  model = config.get('model') or {}
  if 'family' in model:
    return model['family']
  return _LEGACY_EXPERIMENTS.get(config.get('experiment', 'image'), config.get('experiment'))


def get(config_or_name) -> Family:
  """The Family object for a config (or a family name); a clear error for an unknown name."""
  name = config_or_name if isinstance(config_or_name, str) else family_name(config_or_name)
  if name not in FAMILIES:
    raise ValueError(f'config.model.family={name!r} is unknown; use one of {sorted(FAMILIES)}.')
  module, _, attribute = FAMILIES[name].partition(':')
  return getattr(importlib.import_module(module), attribute or 'FAMILY')


def build_networks(config: ml_collections.ConfigDict):
  """The networks of a config's family."""
  return get(config).build_networks(config)
