"""Shared by configs/cifar10_dcgan.py and configs/cifar10_sngan.py: the small GAN families on CIFAR-10.

`get_config(family, arg)` builds the baseline or, with the `diffusion` variant, its Diffusion- version
(pixel diffusion with the adaptive controller, t-conditioned D), at the paper's size or a smaller
one (`small`: the CPU studies; `smoke`: tests), variants comma-separated (e.g. `diffusion,smoke`).
"""
import ml_collections

from configs import base

# The usual CIFAR-10 recipe of each family (Radford et al. / Miyato et al.; the settings of
# chainer-gan-lib and Mimicry): loss, D steps per G step, Adam, steps of D (total_steps counts
# D steps; SNGAN: 50k G updates x n_dis 5).
RECIPES = {
    'dcgan': dict(loss='non_saturating', n_dis=1, lr=2e-4, b1=0.5, b2=0.999, total_steps=100_000),
    'sngan': dict(loss='hinge', n_dis=5, lr=2e-4, b1=0.0, b2=0.9, total_steps=250_000),
}
ROWS = ('diffusion',)
SIZES = ('small', 'smoke')
# `small`: the width and run of the CPU studies (launch/study_small_gans.sh).
SMALL_WIDTH = {'dcgan': 0.25, 'sngan': 0.25}


def parse_variant(arg, family: str) -> tuple[bool, str | None]:
  """`arg` ('', 'diffusion', 'smoke', 'diffusion,small', ...) -> (diffusion on, size or None)."""
  parts = [part for part in (arg or '').split(',') if part]
  unknown = [part for part in parts if part not in ROWS and part not in SIZES]
  sizes = [part for part in parts if part in SIZES]
  if unknown or len(sizes) > 1 or len(set(parts)) != len(parts):
    raise ValueError(f'Unknown or conflicting variant {arg!r} of configs/cifar10_{family}.py; use '
                     f'optionally {ROWS[0]!r} and at most one of {list(SIZES)}, comma-separated '
                     '(e.g. diffusion,smoke).')
  return 'diffusion' in parts, (sizes[0] if sizes else None)


def get_config(family: str, arg=None) -> ml_collections.ConfigDict:
  diffusion_on, size = parse_variant(arg, family)
  recipe = RECIPES[family]
  config = base.get_base_config()
  config.data.source = 'auto'        # The zip at data.path if given, else tfds data.name.
  config.data.name = 'cifar10'
  config.data.resolution = 32
  config.data.channels = 3
  config.data.xflip = False          # The original DCGAN / SNGAN code trains without x-flips.

  config.model.family = family
  config.model.width = 1.0           # Channel multiplier (1: DCGAN 512 at 4x4, SNGAN 256 / 128).
  config.model.z_dim = 128
  config.model.t_embedding = 'sinusoidal'   # Features of t for D's projection term (diffusion).
  config.model.t_embed_dim = 128
  config.model.c_dim = 0

  config.diffusion.enabled = diffusion_on    # Base defaults: linear betas, noise_std 0.05,
                                             # t in [10, 1000], target 0.6, priority t draws.
  config.loss.kind = recipe['loss']
  config.loss.r1_gamma = 0.0         # No R1 and no path length: the original recipes have neither,
  config.loss.pl_weight = 0.0        # and Adam is then not rescaled (families/small_gans.py).
  config.train.n_dis = recipe['n_dis']
  config.optim.g_lr = config.optim.d_lr = recipe['lr']
  config.optim.b1, config.optim.b2 = recipe['b1'], recipe['b2']
  config.optim.eps = 1e-8

  config.train.batch_size = 64
  config.train.batch_gpu = 64        # One BatchNorm batch and one t_epl pool of 64, as one GPU of
                                     # the original code; on 8 devices use batch_gpu 8.
  config.train.total_steps = recipe['total_steps']
  config.train.total_kimg = recipe['total_steps'] * 64 / 1000
  config.train.ema_kimg = 0.0        # G_ema = G: the original recipes evaluate G itself (no EMA);
  config.train.ema_rampup = 0.0      # samples use G's BatchNorm running statistics.
  config.train.log_every_steps = 100
  config.train.checkpoint_every_kimg = 640.0
  config.train.sample_every_kimg = 640.0
  config.eval.metrics = 'fid50k_full'
  config.eval.every_kimg = 640.0     # Every 10k steps at batch 64.

  if size == 'small':                # The CPU studies (launch/study_small_gans.sh).
    config.model.width = SMALL_WIDTH[family]
    config.train.total_steps = 2000
    config.train.total_kimg = 128.0
    config.train.log_every_steps = 50
    config.train.checkpoint_every_kimg = 32.0
    config.train.sample_every_kimg = 32.0
    config.eval.metrics = 'fd10k-clf,kid10k-clf'
    config.eval.every_kimg = 0.0     # At the end only.
  elif size == 'smoke':              # Tiny: seconds on a CPU, for tests.
    config.model.width = 1 / 16
    config.model.z_dim = 16
    config.model.t_embed_dim = 16
    config.train.batch_size = 16
    config.train.batch_gpu = 2
    config.train.total_steps = 2 * recipe['n_dis']
    config.train.total_kimg = config.train.total_steps * 16 / 1000
    config.train.log_every_steps = 2
    config.train.sample_every_kimg = 0.032
    config.train.checkpoint_every_kimg = 0.032
    config.diffusion.ada_interval = 2
    config.eval.metrics = ''
  return config
