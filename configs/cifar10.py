"""CIFAR-10 32x32, unconditional: the reference README command (Diffusion-StyleGAN2, `--cfg cifar`).

Reference: `train.py --gpus=4 --cfg cifar --kimg 50000 --aug no --target 0.6 --noise_sd 0.05
--ts_dist priority` (x-flips on); paper FID 3.19 (fid50k_full, best snapshot), recall 0.58.

Train (tfds cifar10, or the stylegan2-ada zip with --config.data.path):
  python -m dgan_jax.main --config=configs/cifar10.py --workdir=runs/cifar10
  python -m dgan_jax.main --config=configs/cifar10.py --workdir=runs/cifar10 \
      --config.data.path=../shared/data/cifar10/train.zip
Print the networks:
  python -m dgan_jax.models.summary --config=configs/cifar10.py
Variants: `:smoke` (tiny channels, a few steps; tests), `:small` (reduced width for a CPU run).

The paper's Table 1 rows for CIFAR-10 (FID, best snapshot; the paper's numbers, not ours), one
variant each; a row combines with a size, e.g. `:stylegan2_ada,small`:
  :stylegan2          StyleGAN2 (stylegan2-ada D, no diffusion, no augmentation)       8.32
  :stylegan2_diffaug  StyleGAN2 + DiffAugment (color,translation,cutout)               5.79
  :stylegan2_ada      StyleGAN2 + ADA (bgc, its own controller: target 0.6, 500 kimg)  2.92
  (default)           Diffusion-StyleGAN2 (reference --aug no)                          3.19
  :diffusion_diffaug  Diffusion-StyleGAN2 + DiffAugment (reference --aug diff)          2.92 (reference README)
  :diffusion_ada      Diffusion-StyleGAN2 + ADA, p = min(diffusion p, 0.25) (--aug ada) 2.67 (reference README)
e.g.
  python -m dgan_jax.main --config=configs/cifar10.py:stylegan2_ada --workdir=runs/cifar10_sg2ada \
      --config.data.path=../shared/data/cifar10/train.zip
"""
from configs import base
from dgan_jax.models import presets


# Table 1 rows: (diffusion on, augment.kind).
ROWS = {
    'diffusion': (True, 'none'),
    'diffusion_ada': (True, 'ada'),
    'diffusion_diffaug': (True, 'diffaug'),
    'stylegan2': (False, 'none'),
    'stylegan2_ada': (False, 'ada'),
    'stylegan2_diffaug': (False, 'diffaug'),
}
SIZES = ('small', 'smoke')


def get_config(arg=None):
  parts = [part for part in (arg or '').split(',') if part]
  unknown = [part for part in parts if part not in ROWS and part not in SIZES]
  rows = [part for part in parts if part in ROWS]
  sizes = [part for part in parts if part in SIZES]
  if unknown or len(rows) > 1 or len(sizes) > 1:
    raise ValueError(f'Unknown or conflicting variant {arg!r}; use at most one of {sorted(ROWS)} '
                     f'and one of {list(SIZES)}, comma-separated (e.g. stylegan2_ada,smoke).')
  config = _size(sizes[0] if sizes else None)
  config.diffusion.enabled, config.augment.kind = ROWS[rows[0] if rows else 'diffusion']
  return config


def _size(arg):
  config = base.get_base_config()
  config.data.source = 'auto'        # The zip at data.path if given, else tfds data.name.
  config.data.name = 'cifar10'
  config.data.resolution = 32
  config.data.channels = 3
  config.data.xflip = True
  presets.apply_preset(config, 'cifar')
  config.train.total_kimg = 50_000.0  # README command (the preset default is 100,000).
  config.train.log_every_steps = 100
  config.train.checkpoint_every_kimg = 200.0
  config.train.sample_every_kimg = 200.0
  config.eval.metrics = 'fid50k_full'
  config.eval.every_kimg = 200.0
  if arg == 'small':
    apply_small(config)
  elif arg == 'smoke':                # Tiny: seconds per step on a CPU, for tests.
    base.apply_smoke(config)
  return config


def apply_small(config):
  """1/16 width (`:small`): a CPU run that shows learning in ~3 minutes; also the InsGen CPU study's size."""
  config.model.G.channel_base = config.model.D.channel_base = 2048
  config.model.G.channel_max = config.model.D.channel_max = 32
  config.train.batch_size = 32
  config.train.batch_gpu = 16
  config.train.total_kimg = 32.0
  config.train.sample_every_kimg = 4.0
  config.train.checkpoint_every_kimg = 4.0
  config.train.log_every_steps = 25
  config.eval.metrics = ''
