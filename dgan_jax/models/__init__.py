"""Diffusion-StyleGAN2 networks in flax.linen.

`build_models(config)` returns (Generator, Discriminator) modules built from `config.model`
(see presets.apply_preset), `config.data.resolution`, `config.data.channels` and
`config.model.c_dim`.
"""
from dgan_jax.models.discriminator import Discriminator, apply_in_sub_batches
from dgan_jax.models.generator import Generator, path_lengths
from dgan_jax.models.precision import resolve_compute_dtype

__all__ = ['Discriminator', 'Generator', 'apply_in_sub_batches', 'build_models', 'path_lengths']


def build_models(config, backend: str | None = None):
  """(generator, discriminator) flax modules for an experiment config.

  `backend` overrides jax.default_backend() when resolving mixed_precision='auto'.
  """
  model = config.model
  if 'G' not in model or 'D' not in model:
    raise ValueError('config.model has no G/D settings; call '
                     'dgan_jax.models.presets.apply_preset(config, name) first.')
  dtype = resolve_compute_dtype(model.mixed_precision, backend)
  conv_clamp = float(model.conv_clamp) if model.conv_clamp else None
  t_max = config.diffusion.t_max if 'diffusion' in config else 1000
  common = dict(c_dim=int(model.get('c_dim', 0)), img_resolution=int(config.data.resolution),
                img_channels=int(config.data.channels), channel_base=model.G.channel_base,
                num_fp16_res=int(model.num_fp16_res), conv_clamp=conv_clamp,
                mixed_precision_dtype=dtype)
  g, d = model.G, model.D
  generator = Generator(
      **common, z_dim=g.z_dim, w_dim=g.w_dim, mapping_layers=g.mapping_layers,
      mapping_lr_multiplier=g.mapping_lr_multiplier, w_avg_beta=g.w_avg_beta,
      channel_max=g.channel_max, architecture=g.architecture)
  common['channel_base'] = d.channel_base
  discriminator = Discriminator(
      **common, channel_max=d.channel_max, architecture=d.architecture,
      mbstd_group_size=d.mbstd_group_size or None, mbstd_num_channels=d.mbstd_num_channels,
      mapping_layers=d.mapping_layers, cmap_dim=d.cmap_dim or None,
      t_conditioning=bool(config.diffusion.enabled) if 'diffusion' in config else True,
      t_embedding=d.t_embedding,
      t_max=float(t_max), t_embed_dim=d.t_embed_dim)
  return generator, discriminator
