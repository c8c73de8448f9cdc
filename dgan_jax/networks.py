"""The generator/discriminator pair as the training steps see it, for every model family.

The steps only call `init`, `generate`, `score` (and `path_lengths` for StyleGAN2), so every family's
networks share one training loop. Each call handles one sub-batch: the samples of one reference GPU.
Non-trainable network state (StyleGAN2's w_avg and noise buffers, BatchNorm statistics, spectral-norm
vectors, frozen feature networks) lives in `g_buffers` / `d_buffers`: dicts of Flax collections that
the calls take and, with `update_buffers=True`, return updated.

`score` is the discriminator as the losses see it: augmentation (dgan_jax/augment), then the forward
diffusion, then D.
Pixel-level families diffuse the image (this class); a family that diffuses elsewhere (ProjectedGAN:
on feature maps inside D) overrides `score`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dgan_jax import augment, diffusion


@dataclasses.dataclass(frozen=True)
class Networks:
  G: nn.Module
  D: nn.Module
  z_dim: int
  c_dim: int
  sample_shape: tuple          # One real sample: (2,) for the toy, (H, W, C) for images.
  has_buffers: bool = False    # G keeps StyleGAN2's non-trainable 'buffers' (w_avg, noise_const).
  g_collections: tuple = ()    # Other mutable collections of G (e.g. 'batch_stats'), updated in training.
  d_collections: tuple = ()    # Mutable collections of D (e.g. 'batch_stats', 'spectral').

  # --- Initialisation ------------------------------------------------------------------------------

  def init(self, key: jax.Array, batch: int):
    """Returns (g_params, g_buffers, d_params, d_buffers) for a batch size."""
    kg, kd, kn = jax.random.split(key, 3)
    z = jnp.zeros((batch, self.z_dim), jnp.float32)
    c = jnp.zeros((batch, self.c_dim), jnp.float32)
    g_vars = self.G.init({'params': kg, 'noise': kn, 'buffers': kn}, z, c)
    x = jnp.zeros((batch,) + tuple(self.sample_shape), jnp.float32)
    d_vars = self.D.init({'params': kd, 'dropout': kn}, x, c, jnp.zeros((batch,), jnp.int32))
    g_params = g_vars['params']
    d_params = d_vars['params']
    g_buffers = {k: v for k, v in g_vars.items() if k != 'params'}
    d_buffers = {k: v for k, v in d_vars.items() if k != 'params'}
    if self.has_buffers:          # StyleGAN2: g_buffers is the 'buffers' collection itself.
      g_buffers = dict(g_buffers.get('buffers', {}))
    return g_params, g_buffers, d_params, d_buffers

  # --- Generator -----------------------------------------------------------------------------------

  def generate(self, g_params, g_buffers, z, c, key, *, update_buffers: bool = False,
               noise_mode: str = 'random', truncation_psi: float = 1.0,
               style_mixing_prob: float = 0.0):
    """One sub-batch of samples; returns (x, new_buffers).

    `update_buffers` is training mode: StyleGAN2's w_avg tracking, BatchNorm on batch statistics
    with running averages updated. Otherwise evaluation mode (running statistics).
    """
    if self.has_buffers:
      variables = {'params': g_params, 'buffers': g_buffers}
      noise_key, mix_key = jax.random.split(key)
      kwargs = dict(noise_mode=noise_mode, truncation_psi=truncation_psi,
                    update_w_avg=update_buffers, style_mixing_prob=style_mixing_prob)
      rngs = {'noise': noise_key, 'mixing': mix_key}
      if update_buffers:
        x, mutated = self.G.apply(variables, z, c, rngs=rngs, mutable=['buffers'], **kwargs)
        return x, {**g_buffers, **mutated['buffers']}
      return self.G.apply(variables, z, c, rngs=rngs, **kwargs), g_buffers
    variables = {'params': g_params, **g_buffers}
    if self.g_collections:
      rngs = {'noise': key}
      if update_buffers:
        x, mutated = self.G.apply(variables, z, c, train=True, rngs=rngs,
                                  mutable=list(self.g_collections))
        return x, {**g_buffers, **mutated}
      return self.G.apply(variables, z, c, train=False, rngs=rngs), g_buffers
    return self.G.apply(variables, z, c), g_buffers

  def path_lengths(self, g_params, g_buffers, z, c, key, style_mixing_prob: float = 0.0):
    """Per-sample path lengths of one sub-batch for the regularizer; returns (lengths, new_buffers).

    As the reference's Greg phase: mapping (updating w_avg), style mixing, then
    |J_w^T u| with u ~ N(0, I) / sqrt(H W) on the synthesis output. StyleGAN2 generators only.
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

  # --- Discriminator -------------------------------------------------------------------------------

  def discriminate(self, d_params, d_buffers, x, c, t, *, update_buffers: bool = False):
    """Logits [N, K] for one sub-batch of D inputs (already augmented and diffused; K = 1, or the
    patch logits of a patch discriminator); returns (logits, new_d_buffers). `update_buffers`:
    training mode for BatchNorm / spectral norm. Losses average over all N * K logits."""
    variables = {'params': d_params, **d_buffers}
    if self.d_collections:
      if update_buffers:
        logits, mutated = self.D.apply(variables, x, c, t, train=True,
                                       mutable=list(self.d_collections))
        return logits.reshape(x.shape[0], -1), {**d_buffers, **mutated}
      logits = self.D.apply(variables, x, c, t, train=False)
      return logits.reshape(x.shape[0], -1), d_buffers
    return self.D.apply(variables, x, c, t).reshape(x.shape[0], -1), d_buffers

  def score(self, d_params, d_buffers, x, c, key, state, pool, config, *,
            update_buffers: bool = False):
    """D's logits for clean samples x of one sub-batch, as the losses see them: the augmentation
    (`config.augment`, probability `state.augment.p`), then the diffusion with the sub-batch's
    t_epl row `pool` and the current T (`state.diffusion`), then D. Differentiable in x (G's
    gradient and R1 flow through both). Returns (logits [N, K], new_d_buffers)."""
    ka, kd = jax.random.split(key)
    if 'augment' in config:
      x = augment.augment_images(ka, x, state.augment.p, config.augment)
    ctrl = state.diffusion
    y, t = diffusion.diffuse(kd, x, ctrl.t_epl[pool], ctrl.T, config.diffusion)
    return self.discriminate(d_params, d_buffers, y, c, t, update_buffers=update_buffers)
