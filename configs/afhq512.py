"""AFHQ 512x512 (a stylegan2-ada zip made with dgan_jax.dataset_tool): Diffusion-StyleGAN2.

Run:
  python -m dgan_jax.main --config=configs/afhq512.py --workdir=runs/afhq512 --config.data.path=datasets/afhq_cat512.zip
Expected: the paper reports AFHQ FIDs (not restated here); preset `paper512` (table 6).
"""
from configs import base


def get_config(arg=None):
  del arg
  return base.get_image_config('paper512', 512, source='zip', name='', target=0.6)
