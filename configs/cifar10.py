"""CIFAR-10 32x32, unconditional, the reference `--cfg cifar` preset.

Print the networks:  python -m dgan_jax.models.summary --config=configs/cifar10.py
"""
from configs import base
from dgan_jax.models import presets


def get_config(arg=None):
  del arg
  config = base.get_base_config()
  config.data.resolution = 32
  config.data.channels = 3
  presets.apply_preset(config, 'cifar')
  return config
