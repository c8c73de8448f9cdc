"""DCGAN and SNGAN (the paper's appendix J, Table 8) as model families: `model.family='dcgan'|'sngan'`.

Networks from dgan_jax/models/dcgan.py and sngan.py; losses, optimizers and the phase schedule are
the config's (configs/cifar10_dcgan.py, cifar10_sngan.py set the usual CIFAR-10 ones: DCGAN
non-saturating with Adam(2e-4, 0.5, 0.999); SNGAN hinge, n_dis 5, Adam(2e-4, 0, 0.9)).

- Diffusion-DCGAN / Diffusion-SNGAN: `diffusion.enabled=True` builds the t-conditioned D (a
  projection term <e(t), features> added to the t-less logit; docs/families.md); `False` builds the
  t-less D of the baseline.
- Buffers: G's BatchNorm statistics and D's (DCGAN: BatchNorm; SNGAN: spectral-norm `u`, `sigma`)
  are the Flax collection 'batch_stats' in `g_buffers` / `d_buffers`; training mode updates them,
  sampling and evaluation use G's running statistics (as the original code evaluates).
- Adam without the lazy-regularization rescaling (StyleGAN2's G/D reg intervals): these GANs have
  no path length; R1 is off in the configs, and if it is switched on D's Adam gets the reference's
  rescaling for `loss.r1_interval` (R1 runs as a lazy phase).
- G's output side is `data.resolution` = 8 x the bottom grid (32 px: 4x4, the papers' CIFAR-10).
"""
from __future__ import annotations

import ml_collections

from dgan_jax.families.base import ImageFamily
from dgan_jax.models import dcgan, sngan
from dgan_jax.networks import Networks
from dgan_jax.train_state import lazy_adam

T_EMBEDDINGS = ('sinusoidal', 'scaled')


class SmallGANFamily(ImageFamily):
  """A DCGAN-like family: unconditional G(z) and D(x[, t]) with 'batch_stats' buffers."""

  def __init__(self, name: str, generator, discriminator):
    self.name = name
    self._generator, self._discriminator = generator, discriminator

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    m, problems = config.model, []
    for field in ('width', 'z_dim', 't_embedding', 't_embed_dim'):
      if field not in m:
        return [f'config.model has no {field!r}: start from configs/cifar10_{self.name}.py '
                '(configs/small_gans.get_config).']
    width = m.width
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
      problems.append(f'model.width={width!r} must be a number > 0 (channel multiplier; 1 = the '
                      'paper size).')
    for field in ('z_dim', 't_embed_dim'):
      value = m[field]
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f'model.{field}={value!r} must be an integer >= 1.')
    if m.t_embedding not in T_EMBEDDINGS:
      problems.append(f'model.t_embedding={m.t_embedding!r} is unknown for {self.name}; use one of '
                      f'{T_EMBEDDINGS}.')
    if m.t_embedding == 'sinusoidal' and isinstance(m.t_embed_dim, int) and m.t_embed_dim % 2:
      problems.append(f'model.t_embed_dim={m.t_embed_dim} must be even for sinusoidal features.')
    res = config.data.resolution
    if not isinstance(res, int) or res < 8 or res % 8:
      problems.append(f'data.resolution={res!r}: {self.name} needs a multiple of 8 (G upsamples a '
                      'res/8 grid three times; CIFAR-10: 32).')
    if config.data.use_labels:
      problems.append(f'data.use_labels=True: the {self.name} family is unconditional; set '
                      '--config.data.use_labels=False.')
    if config.loss.pl_weight > 0:
      problems.append(f'loss.pl_weight={config.loss.pl_weight}: path-length regularization needs '
                      f"StyleGAN2's mapping network; {self.name} has none. Set it to 0.")
    return problems

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    m, res, ch = config.model, config.data.resolution, config.data.channels
    G = self._generator(z_dim=m.z_dim, width=m.width, img_channels=ch, bottom=res // 8)
    D = self._discriminator(width=m.width, t_conditioning=bool(config.diffusion.enabled),
                            t_embedding=m.t_embedding, t_embed_dim=m.t_embed_dim,
                            t_max=float(config.diffusion.t_max))
    return Networks(G=G, D=D, z_dim=m.z_dim, c_dim=0, sample_shape=(res, res, ch),
                    g_collections=('batch_stats',), d_collections=('batch_stats',))

  def make_optimizers(self, config: ml_collections.ConfigDict):
    """Adam with the config's lr and betas; no lazy-regularization rescaling unless R1 is on."""
    o, loss = config.optim, config.loss
    r1_every = loss.r1_interval if loss.r1_gamma > 0 else 0
    return (lazy_adam(o.g_lr, o.b1, o.b2, o.eps, 0),
            lazy_adam(o.d_lr, o.b1, o.b2, o.eps, r1_every))


DCGAN = SmallGANFamily('dcgan', dcgan.DCGANGenerator, dcgan.DCGANDiscriminator)
SNGAN = SmallGANFamily('sngan', sngan.SNGANGenerator, sngan.SNGANDiscriminator)
