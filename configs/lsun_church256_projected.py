"""LSUN-Church 256x256: Diffusion-ProjectedGAN, target 0.2.

Paper FID 1.85 (Table 2 / the authors' README). Data: a stylegan2-ada zip of LSUN-Church
(dataset_tool, 256x256) given with --config.data.path.
  python -m dgan_jax.main --config=configs/lsun_church256_projected.py --workdir=runs/church_pg \
      --config.data.path=~/lsun_church256.zip
Variants (configs/projected.py): projected, lite, stylegan2, random, small, smoke.
"""
from configs import projected


def get_config(arg=None):
  return projected.get_config('lsun_church', 256, target=0.2, arg=arg)
