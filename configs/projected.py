"""Shared settings of the Diffusion-ProjectedGAN configs (the reference's `diffusion-projected-gan/`).

Reference command (its README, CIFAR-10):
  train.py --gpus=4 --batch 64 --batch-gpu=16 --cfg fastgan --kimg 50000 --target 0.45
           --d_pos first --noise_sd 0.5
What train.py and training_loop.py set, here: hinge loss without regularization, Adam betas
(0, 0.99) eps 1e-8, lr 2e-4 (fastgan) or 2.5e-3 (stylegan2; 2e-3 at 1024), D's Adam rescaled by
its unused lazy interval 16, G's not; EMA half-life batch * 10 / 32 kimg with ramp-up 0.05; x-flips
(--mirror); DiffAugment color,translation,cutout on every D input; the feature-level diffusion
(T in [5, 500], linear betas 1e-4..1e-2, noise_sd 0.5, t per sample and channel, min(round(64 p), 48)
non-zero t_epl entries) with ada_interval 4 and ada_kimg 100; the target per dataset (paper Table 4).

Variants, comma-separated after the config file (e.g. `configs/cifar10_projected.py:small,random`):
  projected   ProjectedGAN: no diffusion (the baseline)
  lite        --cfg fastgan_lite;  stylegan2: --cfg stylegan2
  random      random backbone weights (timm's init; NOT the paper's method: tests, air-gapped CPUs)
  small       a CPU run: FastGAN ngf 16, batch 16, random backbone, a few kimg
  smoke       tiny G (ngf 4), batch 8, random backbone, 2 steps (tests)
"""
from configs import base
from dgan_jax.models.projected import config as pconfig

CFGS = {'lite': 'fastgan_lite', 'stylegan2': 'stylegan2'}
SIZES = ('small', 'smoke')


def get_config(dataset: str, resolution: int, target: float, arg=None, *, name: str = '',
               batch: int = 64, batch_gpu: int = 16):
  """The projected config for a dataset (tfds `name` or a zip at data.path) and its variants."""
  parts = [part for part in (arg or '').split(',') if part]
  known = set(CFGS) | set(SIZES) | {'projected', 'random'}
  unknown = [p for p in parts if p not in known]
  if unknown or sum(p in CFGS for p in parts) > 1 or sum(p in SIZES for p in parts) > 1:
    raise ValueError(f'Unknown or conflicting variant {arg!r} for {dataset}; use any of '
                     f'{sorted(known)} (at most one of {sorted(CFGS)} and one of {list(SIZES)}), '
                     'comma-separated, e.g. small,random.')
  cfg = next((CFGS[p] for p in parts if p in CFGS), 'fastgan')
  config = base.get_base_config()
  config.model.family = 'projected'
  config.model.c_dim = 0               # set from the dataset (data.use_labels) before compiling
  config.data.source = 'auto'
  config.data.name = name
  config.data.resolution = resolution
  config.data.channels = 3
  config.data.xflip = True
  config.model.projected = pconfig.projected_settings(cfg)
  pconfig.apply_feature_diffusion(config.diffusion)
  config.diffusion.target = target
  config.diffusion.ada_interval = 4
  config.diffusion.ada_kimg = 100.0
  config.diffusion.enabled = 'projected' not in parts
  config.augment.kind = 'diffaug'
  config.augment.diffaug_policy = 'color,translation,cutout'
  config.loss.kind = 'hinge'
  config.loss.r1_gamma = 0.0
  config.loss.r1_interval = 16       # unused by R1; rescales D's Adam as the reference's D_reg_interval
  config.loss.pl_weight = 0.0
  config.loss.pl_interval = 0        # G_reg_interval None: no rescaling of G's Adam
  config.loss.style_mixing_prob = 0.0
  lr = 0.0002 if cfg != 'stylegan2' else (0.002 if resolution >= 1024 else 0.0025)
  config.optim.g_lr = config.optim.d_lr = lr
  config.optim.b1, config.optim.b2, config.optim.eps = 0.0, 0.99, 1e-8
  _batch(config, batch, batch_gpu)
  config.train.ema_rampup = 0.05
  config.train.total_kimg = 50_000.0
  config.train.checkpoint_every_kimg = 200.0
  config.train.sample_every_kimg = 200.0
  config.eval.metrics = 'fid50k_full'
  config.eval.every_kimg = 200.0
  if 'random' in parts:
    config.model.projected.backbone = 'random'
  if 'small' in parts:
    config.model.projected.ngf = 16
    config.model.projected.backbone = 'random'
    _batch(config, 16, 8)
    config.train.total_kimg = 8.0
    config.train.log_every_steps = 10
    config.train.sample_every_kimg = 1.0
    config.train.checkpoint_every_kimg = 1.0
    config.eval.metrics = ''
  elif 'smoke' in parts:
    apply_smoke(config)
  return config


def _batch(config, batch: int, batch_gpu: int) -> None:
  config.train.batch_size = batch
  config.train.batch_gpu = batch_gpu
  config.train.ema_kimg = batch * 10 / 32      # the reference's c.ema_kimg


def apply_smoke(config) -> None:
  """Tiny G, the smallest batch on 8 devices, random backbone, 2 steps (seconds on a CPU)."""
  p = config.model.projected
  p.backbone = 'random'
  if p.cfg == 'stylegan2':
    p.cbase, p.cmax, p.z_dim, p.w_dim = 256, 16, 16, 16
  else:
    p.ngf, p.z_dim = 4, 16
  _batch(config, 8, 1)
  config.train.total_kimg = 0.016          # 2 steps
  config.train.sample_every_kimg = 0.008
  config.train.checkpoint_every_kimg = 0.008
  config.train.log_every_steps = 1
  config.diffusion.ada_interval = 1
  config.eval.metrics = ''
