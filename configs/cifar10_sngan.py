"""CIFAR-10 32x32, unconditional: SNGAN and Diffusion-SNGAN (the paper's appendix J, Table 8).

The paper's CIFAR-10 FID (Table 8; the paper's numbers, not ours): SNGAN 20.76, Diffusion-SNGAN
17.23. The authors never released the code of these runs, so the recipe is the usual one of
SNGAN's ResNet for CIFAR-10 (Miyato et al.; sngan_projection / Mimicry): hinge loss, 5 D steps per
G step (train.n_dis; a step here is one D step), Adam lr 2e-4, betas (0, 0.9), batch 64, 250k D
steps (50k G updates), no R1, no EMA (G_ema = G), no x-flips. The Diffusion- variant adds the
pixel diffusion with the adaptive controller (configs/base.py defaults) and the t-conditioned D
(a projection term of t; docs/families.md).

Train (tfds cifar10, or the stylegan2-ada zip with --config.data.path):
  python -m dgan_jax.main --config=configs/cifar10_sngan.py --workdir=runs/cifar10_sngan \
      --config.data.path=../shared/data/cifar10/train.zip
  python -m dgan_jax.main --config=configs/cifar10_sngan.py:diffusion \
      --workdir=runs/cifar10_diffusion_sngan --config.data.path=../shared/data/cifar10/train.zip
Variants (comma-separated, e.g. `:diffusion,small`): `diffusion` (Diffusion-SNGAN), `small` (1/4
width, 2,000 steps, fd10k-clf / kid10k-clf at the end: the CPU study, launch/study_small_gans.sh),
`smoke` (tiny, 2 G steps; tests).
"""
from configs import small_gans


def get_config(arg=None):
  return small_gans.get_config('sngan', arg)
