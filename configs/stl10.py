"""STL-10 64x64 (unlabelled split, resized to 64): Diffusion-StyleGAN2.

Run:
  python -m dgan_jax.main --config=configs/stl10.py --workdir=runs/stl10
Expected: paper: FID 11.43, recall 0.45; preset `stl10` of the reference code
(cifar-like networks at 64 px; the code keeps style mixing, path-length reg and the resnet D).
"""
from configs import base


def get_config(arg=None):
  del arg
  return base.get_image_config('stl10', 64, source='tfds', name='stl10', target=0.6)
