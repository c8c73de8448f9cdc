"""LSUN-Bedroom 256x256: Diffusion-ProjectedGAN, target 0.2.

Paper FID 1.43 (Table 2 / the authors' README). Data: a stylegan2-ada zip of LSUN-Bedroom
(dataset_tool, 256x256) given with --config.data.path.
  python -m dgan_jax.main --config=configs/lsun_bedroom256_projected.py --workdir=runs/bedroom_pg \
      --config.data.path=~/lsun_bedroom256.zip
Variants (configs/projected.py): projected, lite, stylegan2, random, small, smoke.
"""
from configs import projected


def get_config(arg=None):
  return projected.get_config('lsun_bedroom', 256, target=0.2, arg=arg)
