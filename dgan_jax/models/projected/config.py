"""Settings of the Projected-GAN networks (`config.model.projected`) and the builders.

`projected_settings(cfg)` gives the reference's defaults for one `--cfg` (train.py);
`apply_feature_diffusion(config.diffusion)` sets the projected reference's diffusion values;
`build_generator(config)`, `build_discriminator(config)` construct the modules;
`backbone_variables(config)` loads the pretrained backbone (or None for a random one).

The reference's flag or constant is named beside each field (docs/projected.md has the table).
"""
import ml_collections

from dgan_jax.models import efficientnet_lite
from dgan_jax.models.generator import Generator
from dgan_jax.models.precision import resolve_compute_dtype
from dgan_jax.models.projected import fastgan, projector
from dgan_jax.models.projected.discriminator import BACKBONE_SIZE, ProjectedDiscriminator

CFGS = ('fastgan', 'fastgan_lite', 'stylegan2')
BACKBONES = ('pretrained', 'random', 'checkpoint')   # checkpoint: an imported pickle's D


def projected_settings(cfg: str = 'fastgan') -> ml_collections.ConfigDict:
  """config.model.projected for one reference `--cfg` (fastgan, fastgan_lite, stylegan2)."""
  if cfg not in CFGS:
    raise ValueError(f'Unknown projected cfg {cfg!r}; use one of {CFGS} (reference --cfg).')
  s = ml_collections.ConfigDict()
  s.cfg = cfg                     # --cfg
  s.cond = False                  # --cond (class-conditional G and D)
  # Generator.
  s.z_dim = 64 if cfg == 'stylegan2' else 256   # G_kwargs.z_dim (fastgan: Generator default 256)
  s.ngf = 128                     # FastGAN width (Generator default)
  s.num_classes = fastgan.NUM_CLASSES   # FastGAN's class embedding rows (reference default 1000)
  s.w_dim = 128                   # stylegan2: G_kwargs.w_dim
  s.map_depth = 2                 # stylegan2: mapping_kwargs.num_layers
  s.w_avg_beta = 0.998            # stylegan2: MappingNetwork default in networks_stylegan2.py
  s.cbase = 32768                 # stylegan2: --cbase
  s.cmax = 512                    # stylegan2: --cmax
  s.num_fp16_res = 4              # stylegan2: SynthesisNetwork default (--fp32: 0)
  s.conv_clamp = 256.0            # stylegan2: SynthesisBlock default (--fp32: None -> 0 here)
  # Discriminator (D_kwargs, backbone_kwargs).
  s.proj_type = 2                 # backbone_kwargs.proj_type
  s.cout = 64                     # backbone_kwargs.cout
  s.expand = True                 # backbone_kwargs.expand
  s.num_discs = 4                 # backbone_kwargs.num_discs
  s.separable = cfg == 'stylegan2'  # backbone_kwargs.separable (use_separable_discs)
  s.patch = False                 # MultiScaleD patch (not set by train.py)
  s.d_pos = 'first'               # --d_pos: first | last | none
  s.interp224 = 'auto'            # D_kwargs.interp224: auto = data resolution < 224; or True/False
  s.backbone = 'pretrained'       # pretrained (timm's weights file) | random (timm's init; tests, CPU)
                                  # | checkpoint (imported pickles: the backbone is in the checkpoint)
  s.backbone_path = ''            # '' = the weights folder ($DGAN_JAX_METRICS_DIR, docs/projected.md)
  return s


def apply_feature_diffusion(d: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The projected reference's diffusion: Diffusion(t_min=5, t_max=500, beta 1e-4..1e-2) in
  projector.py, --noise_sd 0.5, t per sample and channel, min(round(64 p), 48) non-zero t_epl
  entries, weights t - 1 for the draws, linear schedule."""
  d.beta_schedule = 'linear'
  d.beta_start = 1e-4
  d.beta_end = 1e-2
  d.t_min = 5
  d.t_max = 500
  d.noise_std = 0.5
  d.ts_dist = 'priority'
  d.priority_weights = 'reference'
  d.epl_size = 64
  d.epl_nonzero_rule = 'level'
  d.epl_max_nonzero = 48
  d.t_per_channel = True
  d.initial_p = 0.0
  return d


def validate(config) -> None:
  """Raises ValueError naming every bad config.model.projected setting (before any compile)."""
  s = config.model.projected
  problems = []
  if s.cfg not in CFGS:
    problems.append(f'model.projected.cfg={s.cfg!r} is unknown; use one of {CFGS}.')
  if s.backbone not in BACKBONES:
    problems.append(f'model.projected.backbone={s.backbone!r} is unknown; use one of {BACKBONES}.')
  if s.interp224 not in ('auto', True, False):
    problems.append(f"model.projected.interp224={s.interp224!r} must be 'auto', True or False.")
  if config.data.channels != 3:
    problems.append(f'data.channels={config.data.channels}: the EfficientNet backbone needs RGB '
                    '(3 channels).')
  for check in (lambda: projector.check_settings(s.proj_type, s.d_pos),
                lambda: s.cfg == 'stylegan2' or fastgan.check_settings(
                    int(config.data.resolution), s.ngf, s.cond)):
    try:
      check()
    except ValueError as e:
      problems.append(str(e))
  if s.cond and int(config.model.get('c_dim', 0)) < 1:
    problems.append('model.projected.cond=True needs labels (data.use_labels and c_dim >= 1).')
  if problems:
    raise ValueError('Bad projected model config:\n  ' + '\n  '.join(problems))


def _c_dim(config) -> int:
  return int(config.model.get('c_dim', 0))


def build_generator(config, backend: str | None = None):
  """The generator of `config.model.projected.cfg` for config.data.resolution / channels."""
  validate(config)
  s = config.model.projected
  res, channels = int(config.data.resolution), int(config.data.channels)
  if s.cfg == 'stylegan2':
    dtype = resolve_compute_dtype(config.model.get('mixed_precision', 'auto'), backend)
    return Generator(z_dim=s.z_dim, c_dim=_c_dim(config), w_dim=s.w_dim, img_resolution=res,
                     img_channels=channels, mapping_layers=s.map_depth,
                     mapping_lr_multiplier=0.01, w_avg_beta=s.w_avg_beta,
                     channel_base=s.cbase, channel_max=s.cmax, num_fp16_res=s.num_fp16_res,
                     conv_clamp=float(s.conv_clamp) if s.conv_clamp else None,
                     architecture='skip', mixed_precision_dtype=dtype)
  return fastgan.FastGANGenerator(z_dim=s.z_dim, c_dim=_c_dim(config), img_resolution=res,
                                  img_channels=channels, ngf=s.ngf, lite=s.cfg == 'fastgan_lite',
                                  cond=s.cond, num_classes=s.num_classes)


def build_discriminator(config):
  """The projected discriminator; its diffusion settings are config.diffusion (frozen)."""
  validate(config)
  s = config.model.projected
  interp = (int(config.data.resolution) < BACKBONE_SIZE if s.interp224 == 'auto'
            else bool(s.interp224))
  d_cfg = config.diffusion
  frozen = ml_collections.FrozenConfigDict(d_cfg) if d_cfg.enabled else None
  return ProjectedDiscriminator(c_dim=_c_dim(config), interp224=interp, proj_type=s.proj_type,
                                cout=s.cout, expand=s.expand, num_discs=s.num_discs,
                                separable=s.separable, patch=s.patch, conditional=s.cond,
                                d_pos=s.d_pos, diffusion=frozen)


def backbone_variables(config):
  """The pretrained EfficientNet tree for `projector.install_backbone`, or None when
  config.model.projected.backbone is 'random' (timm's initialisation, as `init` leaves it).

  Reads `backbone_path` or the weights folder; a missing file raises FileNotFoundError naming
  the file, its URL and the folder. Call it before compiling anything.
  """
  s = config.model.projected
  if s.backbone in ('random', 'checkpoint'):   # checkpoint: the restored state holds it
    return None
  return efficientnet_lite.load_variables(s.backbone_path or None)
