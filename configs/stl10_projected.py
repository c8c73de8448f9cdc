"""STL-10 64x64 (unlabelled split resized to 64): Diffusion-ProjectedGAN, target 0.6.

Paper FID 6.91 (Table 2 / the authors' README). Same reference settings as
configs/cifar10_projected.py (FastGAN, batch 64, d_pos first, noise_sd 0.5).
  python -m dgan_jax.main --config=configs/stl10_projected.py --workdir=runs/stl10_pg
Variants (configs/projected.py): projected, lite, stylegan2, random, small, smoke.
"""
from configs import projected


def get_config(arg=None):
  return projected.get_config('stl10', 64, target=0.6, arg=arg, name='stl10')
