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
"""
from configs import base
from dgan_jax.models import presets


def get_config(arg=None):
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
  if arg == 'small':                  # 1/16 width: a CPU run that shows learning in ~3 minutes.
    config.model.G.channel_base = config.model.D.channel_base = 2048
    config.model.G.channel_max = config.model.D.channel_max = 32
    config.train.batch_size = 32
    config.train.batch_gpu = 16
    config.train.total_kimg = 32.0
    config.train.sample_every_kimg = 4.0
    config.train.checkpoint_every_kimg = 4.0
    config.train.log_every_steps = 25
    config.eval.metrics = ''
  elif arg == 'smoke':                # Tiny: seconds per step on a CPU, for tests.
    config.model.G.channel_base = config.model.D.channel_base = 256
    config.model.G.channel_max = config.model.D.channel_max = 16
    config.model.G.z_dim = config.model.G.w_dim = 16
    config.model.D.cmap_dim = 16
    config.model.D.mapping_layers = 2
    config.train.batch_size = 16
    config.train.batch_gpu = 2
    config.train.total_kimg = 0.064    # 4 steps.
    config.train.sample_every_kimg = 0.032
    config.train.checkpoint_every_kimg = 0.032
    config.train.log_every_steps = 2
    config.diffusion.ada_interval = 2
    config.loss.r1_interval = 2
    config.eval.metrics = ''
  elif arg:
    raise ValueError(f'Unknown variant {arg!r}; use :small or :smoke.')
  return config
