"""Shared defaults for every dgan_jax experiment (the reference's values unless noted).

Experiment configs (`configs/toy25.py`, `configs/cifar10.py`, ...) start from `get_base_config()`
and override what differs. Field meanings are documented next to each value; the reference
behaviour they reproduce is described in docs/diffusion.md.
"""
import ml_collections


def get_diffusion_config() -> ml_collections.ConfigDict:
  """The adaptive diffusion (reference `training/diffusion.py` and the ADA-style controller)."""
  d = ml_collections.ConfigDict()
  d.enabled = True              # False: vanilla GAN, D sees clean images with t = 0.
  d.beta_schedule = 'linear'    # linear, quad, const, jsd, sigmoid, cosine, continuous_t.
  d.beta_start = 1e-4
  d.beta_end = 2e-2
  d.t_min = 10                  # The paper's appendix table uses 5; the reference code 10.
  d.t_max = 1000
  d.noise_std = 0.05            # sigma: scales only the noise term.
  d.ts_dist = 'priority'        # priority or uniform draws of the non-zero t.
  d.priority_weights = 'reference'  # reference: p(t) ~ t - 1 (code); paper: p(t) ~ t (eq. 6).
  d.epl_size = 64               # Entries of the exploration list t_epl.
  d.epl_zeros = 32              # Entries that stay t = 0 (clean); 0 = the paper's mixture without t = 0.
  d.epl_nonzero_rule = 'fixed'  # fixed: epl_size - epl_zeros draws (pixel-level reference); level:
                                # min(round(epl_size * p), epl_max_nonzero) (projected reference).
  d.epl_max_nonzero = 48        # Cap of the 'level' rule (projected reference: 48 of 64).
  d.t_per_channel = False       # True: one t per sample and channel (feature maps, projected reference).
  d.target = 0.6                # d_target for r_d = E[sign(D(y_real, t))].
  d.ada_interval = 4            # Minibatches between controller updates.
  d.ada_kimg = 100.0            # kimg for p to go 0 -> 1 at constant sign.
  d.initial_p = 0.0
  d.adaptive = True             # False: p stays at initial_p (T fixed).
  return d


def get_augment_config() -> ml_collections.ConfigDict:
  """Image augmentation of D's inputs (reference `--aug`, `--ada_maxp`; docs/augment.md)."""
  a = ml_collections.ConfigDict()
  a.kind = 'none'               # none, ada, diffaug (reference --aug no|ada|diff).
  a.spec = 'bgc'                # ADA ops: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc.
  a.ada_maxp = 0.25             # With diffusion: ADA p = min(diffusion p, ada_maxp) (reference --ada_maxp).
  # Without diffusion, ADA's own controller (stylegan2-ada's defaults):
  a.ada_target = 0.6            # Target of r = E[sign(D(x_real))].
  a.ada_interval = 4            # Minibatches between controller updates.
  a.ada_kimg = 500.0            # kimg for p to go 0 -> 1 at constant sign.
  a.initial_p = 0.0
  a.adaptive = True             # False: p stays at initial_p.
  a.diffaug_policy = 'color,translation,cutout'
  a.strengths = ml_collections.ConfigDict(dict(   # ADA strengths (reference ADA.__init__ defaults).
      xint_max=0.125, scale_std=0.2, rotate_max=1.0, aniso_std=0.2, xfrac_std=0.125,
      brightness_std=0.2, contrast_std=0.5, hue_max=1.0, saturation_std=1.0,
      imgfilter_bands=(1.0, 1.0, 1.0, 1.0), imgfilter_std=1.0, noise_std=0.1, cutout_size=0.5))
  return a


def get_base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = 'zip'    # toy25, zip (stylegan2-ada folder/zip), tfds.
  config.data.name = ''         # tfds name, e.g. 'cifar10'.
  config.data.path = ''         # folder or zip for source='zip'.
  config.data.resolution = 32
  config.data.channels = 3
  config.data.use_labels = False
  config.data.xflip = True      # The reference's --mirror default is True.
  config.data.max_images = 0    # 0 = all; else a seeded random subset (limited-data runs).
  config.data.shuffle_buffer = 10_000
  config.data.prefetch = 2

  config.diffusion = get_diffusion_config()
  config.augment = get_augment_config()

  config.model = ml_collections.ConfigDict()  # Filled by the experiment config.
  config.model.family = 'stylegan2'  # toy | stylegan2 | insgen | projected (dgan_jax/families): networks, losses, phases.
  config.model.allow_tf32 = False    # False: float32 matmuls/convs at 'highest' precision on GPUs
                                     # (the reference's --allow-tf32 default); True: TF32 / bf16 passes.

  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 0.0025
  config.optim.d_lr = 0.0025
  config.optim.b1 = 0.0
  config.optim.b2 = 0.99
  config.optim.eps = 1e-8

  config.loss = ml_collections.ConfigDict()
  config.loss.kind = 'non_saturating'  # non_saturating (softplus) | hinge.
  config.loss.r1_gamma = 0.01
  config.loss.r1_interval = 16  # Lazy R1 (0 disables R1).
  config.loss.pl_weight = 0.0
  config.loss.pl_interval = 4   # G_reg_interval: also rescales G's Adam even when pl_weight = 0.
  config.loss.pl_batch_shrink = 2
  config.loss.pl_decay = 0.01
  config.loss.style_mixing_prob = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64      # Global batch.
  config.train.batch_gpu = 16       # Reference per-GPU batch: the unit of mbstd groups and t_epl pools.
  config.train.n_dis = 1            # D steps per G step (G main runs every n_dis steps; SNGAN: 5).
  config.train.subs_per_pass = 0    # 0: all of a device's sub-batches at once; k: k at a time
                                    # (gradient accumulation with rematerialisation, same result).
  config.train.total_kimg = 50_000.0
  config.train.total_steps = 0      # > 0: train this many steps instead of total_kimg.
  config.train.verbose_logs = False # True: clu also logs every scalar (default: one progress line).
  config.train.ema_kimg = 500.0
  config.train.ema_rampup = 0.05    # None/0 disables the ramp-up.
  config.train.log_every_steps = 100
  config.train.checkpoint_every_kimg = 200.0
  config.train.keep_checkpoints = 3
  config.train.sample_every_kimg = 200.0
  config.train.distributed = False  # Call jax.distributed.initialize() (multi-host).
  config.train.resume_from = ''     # Transfer learning: start a new run from a reference/stylegan2-ada
                                    # pickle (fresh optimizer and progress; reference --resume).
  config.train.freeze_d = 0         # Freeze-D: the first N D layers get no updates (reference --freezed).

  config.eval = ml_collections.ConfigDict()
  config.eval.metrics = ''          # Comma list, e.g. 'fid50k_full,kid50k_full,is50k,pr50k3_full'.
  config.eval.every_kimg = 0.0      # 0 = only at the end of training.
  config.eval.batch_size = 256      # Feature-extraction batch.
  config.eval.seed = 0              # Latents of the generated images.
  config.eval.cache_dir = '~/.cache/dgan_jax/metrics/stats'   # Real-statistics cache.
  config.eval.dataset_id = ''       # Cache key of the real statistics ('' = from data.path / name).
  config.eval.inception_path = ''   # '' = the weights folder ($DGAN_JAX_METRICS_DIR, docs/metrics.md).
  config.eval.vgg16_path = ''
  config.eval.domain_nets = ''      # 'name=pkg.mod:factory,...' for metrics named e.g. fid50k_full-name.
  config.eval.clf_path = ''         # CIFAR-10 classifier of fd10k-clf/kid10k-clf ('' = weights folder).
  return config


def get_image_config(preset: str, resolution: int, *, source: str = 'auto', name: str = '',
                     target: float = 0.6) -> ml_collections.ConfigDict:
  """An image experiment: the reference preset at a resolution, data and d_target."""
  from dgan_jax.models import presets
  config = get_base_config()
  config.model.family = 'stylegan2'
  config.data.source = source       # auto: the folder/zip at data.path if given, else tfds data.name.
  config.data.name = name
  config.data.resolution = resolution
  config.data.channels = 3
  presets.apply_preset(config, preset)
  config.diffusion.target = target
  config.eval.metrics = 'fid50k_full'
  config.eval.every_kimg = 200.0
  return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny StyleGAN2 networks and a 4-step run (`:smoke` variants): seconds per step on a CPU."""
  config.model.G.channel_base = config.model.D.channel_base = 256
  config.model.G.channel_max = config.model.D.channel_max = 16
  config.model.G.z_dim = config.model.G.w_dim = 16
  config.model.G.mapping_layers = 2
  config.model.D.cmap_dim = 16
  config.model.D.mapping_layers = 2
  config.model.D.mbstd_group_size = min(config.model.D.mbstd_group_size, 32)
  config.train.batch_size = 16
  config.train.batch_gpu = 2
  config.train.total_kimg = 0.064    # 4 steps.
  config.train.sample_every_kimg = 0.032
  config.train.checkpoint_every_kimg = 0.032
  config.train.log_every_steps = 2
  config.diffusion.ada_interval = 2
  config.augment.ada_interval = 2
  config.loss.r1_interval = 2
  config.eval.metrics = ''
