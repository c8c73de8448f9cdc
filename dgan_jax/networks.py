"""The generator/discriminator pair as the training steps see it, for every experiment.

The steps only call `init`, `generate` and `discriminate`, so the toy MLPs and the StyleGAN2 networks
share one training loop. Each call handles one sub-batch: the samples of one reference GPU.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


@dataclasses.dataclass(frozen=True)
class Networks:
  G: nn.Module
  D: nn.Module
  z_dim: int
  c_dim: int
  sample_shape: tuple          # One real sample: (2,) for the toy, (H, W, C) for images.
  has_buffers: bool = False    # G keeps non-trainable 'buffers' (w_avg, noise_const).
  g_call_kwargs: Any = dataclasses.field(default_factory=dict)

  def init(self, key: jax.Array, batch: int):
    """Returns (g_params, g_buffers, d_params) for a batch size (shapes only depend on the sample)."""
    kg, kd, kn = jax.random.split(key, 3)
    z = jnp.zeros((batch, self.z_dim), jnp.float32)
    c = jnp.zeros((batch, self.c_dim), jnp.float32)
    g_vars = self.G.init({'params': kg, 'noise': kn, 'buffers': kn}, z, c)
    x = jnp.zeros((batch,) + tuple(self.sample_shape), jnp.float32)
    d_vars = self.D.init(kd, x, c, jnp.zeros((batch,), jnp.int32))
    return g_vars['params'], dict(g_vars.get('buffers', {})), d_vars['params']

  def generate(self, g_params, g_buffers, z, c, key, *, update_buffers: bool = False,
               noise_mode: str = 'random', truncation_psi: float = 1.0,
               style_mixing_prob: float = 0.0):
    """One sub-batch of samples; returns (x, new_buffers)."""
    variables = {'params': g_params}
    if not self.has_buffers:
      return self.G.apply(variables, z, c), g_buffers
    variables['buffers'] = g_buffers
    noise_key, mix_key = jax.random.split(key)
    kwargs = dict(noise_mode=noise_mode, truncation_psi=truncation_psi,
                  update_w_avg=update_buffers, style_mixing_prob=style_mixing_prob)
    rngs = {'noise': noise_key, 'mixing': mix_key}
    if update_buffers:
      x, mutated = self.G.apply(variables, z, c, rngs=rngs, mutable=['buffers'], **kwargs)
      return x, {**g_buffers, **mutated['buffers']}
    return self.G.apply(variables, z, c, rngs=rngs, **kwargs), g_buffers

  def path_lengths(self, g_params, g_buffers, z, c, key, style_mixing_prob: float = 0.0):
    """Per-sample path lengths of one sub-batch for the regularizer; returns (lengths, new_buffers).

    As the reference's Greg phase: mapping (updating w_avg), style mixing, then
    |J_w^T u| with u ~ N(0, I) / sqrt(H W) on the synthesis output.
    """
    from dgan_jax.models import path_lengths
    noise_key, mix_key, pl_key = jax.random.split(key, 3)
    variables = {'params': g_params, 'buffers': g_buffers}
    ws, mutated = self.G.apply(variables, z, c, update_w_avg=True, method='mapping',
                               mutable=['buffers'])
    buffers = {**g_buffers, **mutated['buffers']}
    if style_mixing_prob > 0:
      ws = self.G.apply(variables, ws, z, c, style_mixing_prob, method='mix_styles',
                        rngs={'mixing': mix_key})
    lengths, _ = path_lengths(self.G, {'params': g_params, 'buffers': buffers}, ws, pl_key,
                              rngs={'noise': noise_key})
    return lengths, buffers

  def discriminate(self, d_params, x, c, t):
    """Logits [N] for one sub-batch."""
    return self.D.apply({'params': d_params}, x, c, t).reshape(x.shape[0])


def build_networks(config: ml_collections.ConfigDict) -> Networks:
  """The networks of `config.experiment`."""
  if config.experiment == 'toy':
    from dgan_jax import toy
    m = config.model
    return Networks(
        G=toy.ToyGenerator(width=m.width, depth=m.depth),
        D=toy.ToyDiscriminator(width=m.width, depth=m.depth, t_max=config.diffusion.t_max,
                               t_embedding=m.get('t_embedding', 'scaled')),
        z_dim=m.z_dim, c_dim=0, sample_shape=(2,))
  if config.experiment == 'image':
    from dgan_jax.models import build_models
    G, D = build_models(config)
    res, ch = config.data.resolution, config.data.channels
    return Networks(G=G, D=D, z_dim=config.model.G.z_dim, c_dim=config.model.c_dim,
                    sample_shape=(res, res, ch), has_buffers=True)
  raise ValueError(f'config.experiment={config.experiment!r} is unknown; use "toy" or "image".')
