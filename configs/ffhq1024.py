"""FFHQ 1024x1024 (a stylegan2-ada zip made with dgan_jax.dataset_tool): Diffusion-StyleGAN2.

Run:
  python -m dgan_jax.main --config=configs/ffhq1024.py --workdir=runs/ffhq1024 --config.data.path=datasets/ffhq1024.zip
Expected: paper: FID 2.83, recall 0.49; preset `stylegan2` (table 6), d_target 0.8.
"""
from configs import base


def get_config(arg=None):
  del arg
  return base.get_image_config('stylegan2', 1024, source='zip', name='', target=0.8)
