"""25-Gaussians (paper section 4.2, figure 5): Diffusion-GAN on a CPU in a few minutes.

Run:
  python -m dgan_jax.main --config=configs/toy25.py --workdir=runs/toy25
  python -m dgan_jax.main --config=configs/toy25.py --workdir=runs/toy25_vanilla \
      --config.diffusion.enabled=False      # the vanilla GAN baseline, everything else equal

Expected (README table): Diffusion-GAN covers all 25 modes (seeds 0-4: 25/25 each, 84-86% of
samples high quality); writes samples.npy, toy25.png, diffusion_trajectory.png, results.json,
config.json and TensorBoard events into the workdir. Over seeds:
  bash launch/toy25_seeds.sh runs/toy25_seeds "0 1 2 3 4"
"""
from configs import base


def get_config(arg=None):
  config = base.get_base_config()
  config.model.family = 'toy'
  config.seed = 0
  config.data.source = 'toy25'
  config.data.xflip = False

  config.model.width = 128      # Paper: two hidden layers of 128 units, LeakyReLU.
  config.model.depth = 2
  config.model.z_dim = 2
  config.model.t_embedding = 'scaled'  # D's t input: t / t_max, or 'sinusoidal' features.

  d = config.diffusion
  d.noise_std = 2.0             # sigma in data units (the mixture spans [-4, 4]; images use 0.05).
  d.epl_zeros = 0               # The paper's mixture over t = 1..T, no clean entries (README).
  d.t_min = 10
  d.t_max = 1000
  d.ada_kimg = 100.0

  config.optim.g_lr = 1e-3
  config.optim.d_lr = 1e-3
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.loss.r1_gamma = 0.0    # No R1, no lazy-regularization rescaling for the toy.
  config.loss.r1_interval = 0
  config.loss.pl_interval = 0

  t = config.train
  t.batch_size = 512
  t.batch_gpu = 128             # 4 t_epl pools, as the reference's 4 GPUs.
  t.total_kimg = 40960.0        # 80,000 steps.
  t.ema_kimg = 200.0            # Samples come from G_ema, as for the image models.
  t.ema_rampup = 0.05
  t.log_every_steps = 1000
  t.checkpoint_every_kimg = 10240.0
  if arg == 'smoke':             # A few steps that run on 1 or 8 devices (tests).
    t.batch_size = 64
    t.batch_gpu = 8
    t.total_kimg = 3.2          # 50 steps.
    t.log_every_steps = 10
    t.checkpoint_every_kimg = 1.6
  return config
