"""LSUN-Bedroom 256x256: Diffusion-StyleGAN2.

Run:
  python -m dgan_jax.main --config=configs/lsun_bedroom256.py --workdir=runs/lsun_bedroom256
Expected: paper: FID 3.65, recall 0.32; preset `paper256` (table 6).
"""
from configs import base


def get_config(arg=None):
  del arg
  return base.get_image_config('paper256', 256, source='tfds', name='lsun/bedroom', target=0.6)
