"""CIFAR-10 32x32: Diffusion-ProjectedGAN (FastGAN G, projected D, diffusion on its feature maps).

Reference: `train.py --gpus=4 --batch 64 --batch-gpu=16 --cfg fastgan --kimg 50000 --target 0.45
--d_pos first --noise_sd 0.5` (the authors' README); paper FID 2.54 (Table 2, best snapshot).
Needs the backbone weights `tf_efficientnet_lite0-0aa007d2.pth` in the weights folder
(docs/projected.md; the error names the URL), or the `random` variant (not the paper's method).

Train (tfds cifar10, or the stylegan2-ada zip with --config.data.path):
  python -m dgan_jax.main --config=configs/cifar10_projected.py --workdir=runs/cifar10_pg \
      --config.data.path=../shared/data/cifar10/train.zip
A CPU run with a random backbone (README: samples and T trajectory):
  python -m dgan_jax.main --config=configs/cifar10_projected.py:small \
      --workdir=runs/cifar10_pg_small --config.data.path=../shared/data/cifar10/train.zip
Print the networks:
  python -m dgan_jax.models.summary --config=configs/cifar10_projected.py
Variants (configs/projected.py): projected (no diffusion), lite, stylegan2, random, small, smoke.
"""
from configs import projected


def get_config(arg=None):
  return projected.get_config('cifar10', 32, target=0.45, arg=arg, name='cifar10')
