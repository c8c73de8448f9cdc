"""CelebA 64x64 (centre-cropped, resized): Diffusion-StyleGAN2.

Run:
  python -m dgan_jax.main --config=configs/celeba64.py --workdir=runs/celeba64
Expected: paper: FID 1.69, recall 0.67. The paper does not name the preset for CelebA;
we use the reference's `auto` preset at 64 px.
"""
from configs import base


def get_config(arg=None):
  del arg
  return base.get_image_config('auto', 64, source='tfds', name='celeb_a', target=0.6)
