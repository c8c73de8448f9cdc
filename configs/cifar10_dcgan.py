"""CIFAR-10 32x32, unconditional: DCGAN and Diffusion-DCGAN (the paper's appendix J, Table 8).

The paper's CIFAR-10 FID (Table 8; the paper's numbers, not ours): DCGAN 28.65, Diffusion-DCGAN
24.67. The authors never released the code of these runs, so the recipe is the usual one of the
DCGAN for CIFAR-10 (Radford et al.; chainer-gan-lib / Mimicry): non-saturating loss, Adam lr 2e-4,
betas (0.5, 0.999), batch 64, 100k steps, no R1, no EMA (G_ema = G), no x-flips. The Diffusion-
variant adds the pixel diffusion with the adaptive controller (configs/base.py defaults) and the
t-conditioned D (docs/families.md).

Train (tfds cifar10, or the stylegan2-ada zip with --config.data.path):
  python -m dgan_jax.main --config=configs/cifar10_dcgan.py --workdir=runs/cifar10_dcgan \
      --config.data.path=../shared/data/cifar10/train.zip
  python -m dgan_jax.main --config=configs/cifar10_dcgan.py:diffusion \
      --workdir=runs/cifar10_diffusion_dcgan --config.data.path=../shared/data/cifar10/train.zip
Variants (comma-separated, e.g. `:diffusion,small`): `diffusion` (Diffusion-DCGAN), `small` (1/4
width, 2,000 steps, fd10k-clf / kid10k-clf at the end: the CPU study, launch/study_small_gans.sh),
`smoke` (tiny, 2 steps; tests).
"""
from configs import small_gans


def get_config(arg=None):
  return small_gans.get_config('dcgan', arg)
