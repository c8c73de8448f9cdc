"""Diffusion-ProjectedGAN (the authors' `diffusion-projected-gan/`) as a model family.

Networks from dgan_jax/models/projected: a FastGAN (or StyleGAN2) generator and the projected
discriminator (frozen EfficientNet-lite0, frozen random mixers, four trainable multi-scale
mini-discriminators with patch logits). The diffusion runs on the backbone's feature maps inside D
(`diffusion.t_per_channel`, the 'level' t_epl rule), so `score` passes the controller's t_epl row
and T to D instead of diffusing the image; D never sees t. DiffAugment (color, translation,
cutout) is applied to every D input first (`augment.kind = 'diffaug'`, the reference's
`diffaug=True`).

Losses and phases as the reference's ProjectedGANLoss and training loop: hinge, no R1 or path
length (loss.r1_gamma = loss.pl_weight = 0), G and D phases every step, Adam betas (0, 0.99) with
D's lazy rescaling (D_reg_interval 16: lr x 16/17, beta2 ** (16/17), `loss.r1_interval = 16`) and
none for G (`loss.pl_interval = 0`). Every G and D call is in training mode (BatchNorm on the
sub-batch's statistics, one spectral-norm power iteration per call), as in the reference.

The pretrained backbone (`model.projected.backbone = 'pretrained'`) is read from its weight file
in `prepare`, before anything compiles; `'random'` keeps timm's initialisation (tests, CPU runs).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from dgan_jax import augment, errors
from dgan_jax.families.base import ImageFamily
from dgan_jax.networks import Networks

G_COLLECTIONS = ('batch_stats', 'spectral')   # FastGAN's trained buffers (StyleGAN2 G: 'buffers').
D_COLLECTIONS = ('batch_stats', 'spectral')   # D's trained buffers; 'frozen' is read-only.


@dataclasses.dataclass(frozen=True)
class ProjectedNetworks(Networks):
  """Networks whose D diffuses feature maps: `score` hands D the t_epl row, T and a key."""

  def init(self, key: jax.Array, batch: int):
    kg, kd, kn = jax.random.split(key, 3)
    z = jnp.zeros((batch, self.z_dim), jnp.float32)
    c = jnp.zeros((batch, self.c_dim), jnp.float32)
    g_vars = self.G.init({'params': kg, 'noise': kn, 'buffers': kn}, z, c)
    d_vars = self.D.init({'params': kd}, jnp.zeros((batch,) + tuple(self.sample_shape)), c)
    g_buffers = {k: v for k, v in g_vars.items() if k != 'params'}
    if self.has_buffers:          # the StyleGAN2 option of --cfg
      g_buffers = dict(g_buffers.get('buffers', {}))
    return (g_vars['params'], g_buffers, d_vars['params'],
            {k: v for k, v in d_vars.items() if k != 'params'})

  def score(self, d_params, d_buffers, x, c, key, state, pool, config, *,
            update_buffers: bool = False):
    """DiffAugment, then D with the feature-level diffusion of t_epl row `pool` at the current T."""
    ka, kd = jax.random.split(key)
    x = augment.augment_images(ka, x, state.augment.p, config.augment)
    ctrl = state.diffusion
    t_epl, T = (ctrl.t_epl[pool], ctrl.T) if config.diffusion.enabled else (None, None)
    variables = {'params': d_params, **d_buffers}
    if update_buffers:
      logits, mutated = self.D.apply(variables, x, c, t_epl, T, kd, train=True,
                                     mutable=list(self.d_collections))
      return logits.reshape(x.shape[0], -1), {**d_buffers, **mutated}
    logits = self.D.apply(variables, x, c, t_epl, T, kd, train=False)
    return logits.reshape(x.shape[0], -1), d_buffers

  def discriminate(self, d_params, d_buffers, x, c, t, *, update_buffers: bool = False):
    raise NotImplementedError('The projected D diffuses its feature maps: call `score`.')


class ProjectedFamily(ImageFamily):
  name = 'projected'

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    if 'projected' not in config.model:
      return ['config.model.projected is missing: start from configs/projected.py (e.g. '
              'configs/cifar10_projected.py) or set it with '
              "dgan_jax.models.projected.config.projected_settings('fastgan')."]
    from dgan_jax.models.projected import config as pconfig
    problems = []
    try:
      pconfig.validate(config)
    except ValueError as e:
      problems.extend(line.strip() for line in str(e).splitlines()[1:])
    loss = config.loss
    if loss.r1_gamma or loss.pl_weight:
      problems.append(f'loss.r1_gamma={loss.r1_gamma} / loss.pl_weight={loss.pl_weight}: the '
                      'projected family has no R1 or path-length term (the reference regularizes '
                      'nothing); set both to 0.')
    if config.diffusion.enabled and not config.diffusion.t_per_channel:
      problems.append('diffusion.t_per_channel=False: the projected family diffuses feature maps '
                      'with one t per sample and channel; keep the settings of '
                      'models.projected.config.apply_feature_diffusion.')
    return problems

  def prepare(self, config: ml_collections.ConfigDict) -> None:
    """The dataset checks, and the backbone weight file read once (a missing file fails here)."""
    super().prepare(config)
    if config.model.projected.cond and not config.model.c_dim:
      raise errors.UserError('model.projected.cond=True needs a labelled dataset with '
                             'data.use_labels=True.')
    backbone_weights(config)

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    from dgan_jax.models.projected import config as pconfig
    G, D = pconfig.build_generator(config), pconfig.build_discriminator(config)
    res, ch = config.data.resolution, config.data.channels
    stylegan = config.model.projected.cfg == 'stylegan2'
    return ProjectedNetworks(G=G, D=D, z_dim=config.model.projected.z_dim,
                             c_dim=config.model.get('c_dim', 0), sample_shape=(res, res, ch),
                             has_buffers=stylegan, g_collections=() if stylegan else G_COLLECTIONS,
                             d_collections=D_COLLECTIONS)

  def init_state(self, config: ml_collections.ConfigDict, nets: Networks, g_tx, d_tx):
    """The default fresh state with the pretrained backbone installed in D's 'frozen' tree."""
    state = super().init_state(config, nets, g_tx, d_tx)
    weights = backbone_weights(config)
    if weights is None:
      return state
    from dgan_jax.models.projected import projector
    d_buffers = projector.install_backbone({'params': state.d_params, **state.d_buffers}, weights)
    del d_buffers['params']
    return state.replace(d_buffers=d_buffers)


  def export_state_dicts(self, config: ml_collections.ConfigDict, state, with_d: bool) -> dict:
    """G and G_ema in the reference's keys (FastGAN: models/projected/torch_names; the StyleGAN2
    option: models/torch_names), D with its backbone and mixers (a complete state dict)."""
    from dgan_jax import export
    from dgan_jax.models import torch_names as sg2_names
    from dgan_jax.models.projected import torch_names
    nets = self.build_networks(config)
    numpy = export.jax_to_numpy
    buffers = numpy(state.g_buffers)

    def generator(params):
      if nets.has_buffers:
        return sg2_names.to_torch_state_dict(numpy(params), buffers, 'G')
      return torch_names.to_torch({'params': numpy(params), **buffers},
                                  torch_names.generator_table(nets.G))
    out = {'G': generator(state.g_params)}
    if with_d:
      out['D'] = torch_names.to_torch({'params': numpy(state.d_params), **numpy(state.d_buffers)},
                                      torch_names.discriminator_table(nets.D, backbone=True))
    out['G_ema'] = generator(state.g_ema_params)
    return out

  def export_kwargs(self, config: ml_collections.ConfigDict, with_d: bool) -> dict:
    """The reference train.py's G_kwargs / D_kwargs for this config."""
    s, res = config.model.projected, int(config.data.resolution)
    common = dict(c_dim=int(config.model.get('c_dim', 0)), img_resolution=res,
                  img_channels=int(config.data.channels))
    if s.cfg == 'stylegan2':
      g = dict(class_name='pg_modules.networks_stylegan2.Generator', z_dim=s.z_dim, w_dim=s.w_dim,
               mapping_kwargs=dict(num_layers=s.map_depth), channel_base=s.cbase,
               channel_max=s.cmax, num_fp16_res=s.num_fp16_res,
               conv_clamp=float(s.conv_clamp) if s.conv_clamp else None, **common)
    else:
      g = dict(class_name='pg_modules.networks_fastgan.Generator', cond=bool(s.cond),
               synthesis_kwargs=dict(lite=s.cfg == 'fastgan_lite'), z_dim=s.z_dim, ngf=s.ngf,
               **common)
    kwargs = {'G_kwargs': g}
    if with_d:
      interp = res < 224 if s.interp224 == 'auto' else bool(s.interp224)
      kwargs['D_kwargs'] = dict(
          class_name='pg_modules.discriminator.ProjectedDiscriminator', diffaug=True,
          interp224=interp, backbone_kwargs=dict(
              d_pos=s.d_pos, noise_sd=float(config.diffusion.noise_std), cout=s.cout,
              expand=s.expand, proj_type=s.proj_type, num_discs=s.num_discs,
              separable=s.separable, cond=bool(s.cond)), **common)
    return kwargs


_BACKBONES: dict = {}


def backbone_weights(config: ml_collections.ConfigDict):
  """The pretrained EfficientNet tree (read once per file), or None for a random backbone."""
  from dgan_jax.models.projected import config as pconfig
  s = config.model.projected
  if s.backbone in ('random', 'checkpoint'):
    return None
  key = s.backbone_path or ''
  if key not in _BACKBONES:
    try:
      _BACKBONES[key] = pconfig.backbone_variables(config)
    except FileNotFoundError as e:
      raise errors.MissingInputError(
          f'{e} Or train with a random backbone (not the paper\'s method): '
          '--config.model.projected.backbone=random.') from e
  return _BACKBONES[key]


FAMILY = ProjectedFamily()
