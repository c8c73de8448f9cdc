"""Diffusion-InsGen (the authors' `diffusion-insgen/`): StyleGAN2 with instance-discrimination heads.

On top of the StyleGAN2 family (its networks, phases and the ADA + diffusion pipe of D's input), D
also learns two contrastive tasks on its 4x4 trunk features (dgan_jax/models/contrastive.py):
  real instances: two fixed ADA(p = 0.2) views of each real image, queries through D and the real
    head, keys through D_ema (a momentum copy of D) and the head's momentum MLP, negatives from the
    real-key queue;
  fake instances: a generated image and G(z + 0.15 delta) as its positive, through the fake head,
    negatives from the fake queue (filled with the momentum embedding of the queries).
G gets 0.1 x the fake-instance loss of its own samples (`insgen.cl_on_g`). The heads have their own
Adam (G's and D's settings with their lazy-regularization rescaling), D_ema moves every step, and
the queues are ring buffers filled with the keys of the whole global batch (an all-gather across
devices) in the reference's rank order. Everything is state (TrainState.extra) and checkpointed.

Fixed here (the reference's bugs): a one-process run works (its all-gather needs a process group);
resuming restores the heads and queues (its issue #6). The authors' snapshots import with D_ema, the
heads and queues, and export writes them back in the reference's keys (interop/insgen_import.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dgan_jax import errors, steps
from dgan_jax.families.stylegan2 import StyleGAN2Family
from dgan_jax.models import contrastive
from dgan_jax.models.generator import channels_per_resolution
from dgan_jax.train_state import lazy_adam

HEADS = ('real', 'fake')


def get_insgen_config() -> ml_collections.ConfigDict:
  """InsGen's options (reference train.py names in comments)."""
  c = ml_collections.ConfigDict()
  c.enabled = True              # False: --no_insgen (plain (Diffusion-)StyleGAN2 + ADA).
  c.real_queue_size = 0         # --rqs; 0 = 5% of the dataset (x2 with x-flips).
  c.fake_queue_size = 0         # --fqs; 0 = the same default.
  c.temperature = 0.2
  c.momentum = 0.999            # Heads' momentum MLPs and D_ema.
  c.real_weight = 1.0           # lw_real_cl
  c.fake_weight = 1.0           # lw_fake_cl
  c.fake_weight_on_g = 0.1      # lw_fake_cl_on_g
  c.cl_on_g = True              # False: --no_cl_on_g.
  c.view_p = 0.2                # The fixed ADA probability of the two contrastive views.
  c.view_spec = 'bgc'
  c.z_noise = 0.15              # Positive of a fake: G(z + z_noise * delta).
  return c


def default_queue_size(num_images: int, xflip: bool) -> int:
  """The reference's default: int(0.05 * dataset size), doubled with x-flips."""
  size = int(0.05 * num_images)
  return size * 2 if xflip else size


class InsGenFamily(StyleGAN2Family):
  name = 'insgen'

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    problems = super().check(config)
    if 'insgen' not in config:
      return problems + ['config.insgen is missing: start from configs/ffhq1024_insgen.py or add '
                         'dgan_jax.families.insgen.get_insgen_config().']
    if config.train.get('n_dis', 1) != 1:
      problems.append('model.family=insgen needs train.n_dis=1 (G and D phases every step).')
    c = config.insgen
    for name in ('real_queue_size', 'fake_queue_size'):
      if c[name] < 0:
        problems.append(f'insgen.{name}={c[name]} must be >= 0 (0: 5% of the dataset).')
    if not 0 < c.momentum < 1 or c.temperature <= 0:
      problems.append(f'insgen.momentum={c.momentum} must be in (0, 1) and insgen.temperature='
                      f'{c.temperature} > 0.')
    return problems

  def prepare(self, config: ml_collections.ConfigDict) -> None:
    """Also fixes the queue sizes from the dataset size when they are 0 (before compiling)."""
    super().prepare(config)
    if not (config.insgen.real_queue_size and config.insgen.fake_queue_size):
      from dgan_jax.data import pipeline
      size = default_queue_size(pipeline.dataset_info(config.data).num_images, config.data.xflip)
      if size < 1:
        raise errors.UserError(f'The dataset is too small for the default InsGen queue (5% of it is '
                         f'{size}); set --config.insgen.real_queue_size and fake_queue_size.')
      config.insgen.real_queue_size = config.insgen.real_queue_size or size
      config.insgen.fake_queue_size = config.insgen.fake_queue_size or size

  def head_optimizers(self, config: ml_collections.ConfigDict) -> dict:
    """The fake head uses G's Adam settings and lazy rescaling, the real head D's (reference)."""
    o, loss = config.optim, config.loss
    return {'fake': lazy_adam(o.g_lr, o.b1, o.b2, o.eps, loss.pl_interval),
            'real': lazy_adam(o.d_lr, o.b1, o.b2, o.eps, loss.r1_interval)}

  def init_extra(self, config: ml_collections.ConfigDict, nets) -> dict:
    if not config.insgen.enabled:
      return {}
    inplanes = channels_per_resolution(4, config.model.D.channel_base, config.model.D.channel_max)
    key = jax.random.fold_in(jax.random.key(config.seed), 7)
    sizes = {'real': config.insgen.real_queue_size, 'fake': config.insgen.fake_queue_size}
    if not all(sizes.values()):
      raise ValueError('InsGen queue sizes are unset: the family prepares them from the dataset '
                       '(train.setup_config), or set insgen.real_queue_size / fake_queue_size.')
    heads = {name: contrastive.init_head(jax.random.fold_in(key, i), inplanes, sizes[name])
             for i, name in enumerate(HEADS)}
    txs = self.head_optimizers(config)
    # D_ema starts as D (filled by init_state's caller: see init_state below).
    return {'heads': heads, 'head_opt': {n: txs[n].init(heads[n].params) for n in HEADS}}

  def init_state(self, config, nets, g_tx, d_tx):
    state = super().init_state(config, nets, g_tx, d_tx)
    if config.insgen.enabled:
      state = state.replace(extra={**state.extra, 'd_ema': state.d_params})
    return state

  def extension(self, config: ml_collections.ConfigDict, nets, mesh):
    if not config.insgen.enabled:
      return None
    return contrastive_extension(config, nets, self.head_optimizers(config))

  def transfer_from(self, config: ml_collections.ConfigDict, fresh, path: str, ref):
    """Also D_ema and the heads from the pickle where their names and shapes match (the reference's
    --resume; D_ema starts as the transferred D when the pickle has none)."""
    state, notes = super().transfer_from(config, fresh, path, ref)
    if not config.insgen.enabled:
      return state, notes
    from dgan_jax.interop import insgen_import
    state, more = insgen_import.transfer_extra(ref, state)
    return state, notes + more

  def export_state_dicts(self, config: ml_collections.ConfigDict, state, with_d: bool) -> dict:
    """G, D, G_ema and, with D and the heads on, D_ema, DHead (real) and GHead (fake) in the
    reference's keys (interop/insgen_import.py): a complete Diffusion-InsGen snapshot."""
    out = super().export_state_dicts(config, state, with_d)
    if with_d and config.insgen.enabled:
      from dgan_jax.interop import insgen_import
      out.update(insgen_import.export_state_dicts(state))
    return out

  def export_kwargs(self, config: ml_collections.ConfigDict, with_d: bool) -> dict:
    """Also the reference train.py's DHead_kwargs / GHead_kwargs (D_ema is built from D_kwargs)."""
    kwargs = super().export_kwargs(config, with_d)
    if with_d and config.insgen.enabled:
      from dgan_jax.interop import insgen_import
      for ours, theirs in insgen_import.HEADS.items():
        kwargs[f'{theirs}_kwargs'] = insgen_import.head_kwargs(config, ours)
    return kwargs


def contrastive_extension(config: ml_collections.ConfigDict, nets, head_txs) -> steps.Extension:
  """InsGen's additions to the generic step (see the module docstring)."""
  from dgan_jax.augment import ada
  c = config.insgen
  inplanes = channels_per_resolution(4, config.model.D.channel_base, config.model.D.channel_max)

  def view(key, images):
    return ada.augment(key, images, c.view_p, c.view_spec)

  def features(d_params, images, labels):
    """D's 4x4 trunk features with t = 0 (the contrastive branch; reference run_cl)."""
    t = jnp.zeros((images.shape[0],), jnp.int32)
    _, feats = nets.D.apply({'params': d_params}, images, labels, t, return_feats=True)
    return feats

  def momentum_after(state, name, updates):
    head = state.extra['heads'][name]
    m = head.momentum_params
    for _ in range(updates):
      m = contrastive.momentum_update(m, head.params, c.momentum)
    return m

  fake_updates_before_d = 2 if c.cl_on_g else 1   # GHead's momentum moves in G main and D main.

  def begin(state):
    """D_ema <- momentum * D_ema + (1 - momentum) * D, at the start of every step (reference)."""
    d_ema = contrastive.momentum_update(state.extra['d_ema'], state.d_params, c.momentum)
    return state.replace(extra={**state.extra, 'd_ema': d_ema})

  def g_loss(state, g_params, key, fake):
    if not c.cl_on_g:
      return jnp.zeros(()), {}
    k0, k1 = jax.random.split(key)
    head = state.extra['heads']['fake']
    q = contrastive.embed(jax.lax.stop_gradient(head.params),
                          features(state.d_params, view(k0, fake['x']), fake['c']), inplanes)
    k_feats = features(state.extra['d_ema'], view(k1, jax.lax.stop_gradient(fake['x'])), fake['c'])
    k = contrastive.embed(momentum_after(state, 'fake', 1), k_feats, inplanes)
    loss = contrastive.info_nce(q, jax.lax.stop_gradient(k), head.queue, c.temperature)
    return c.fake_weight_on_g * loss, {'insgen/G_cl_on_g': loss}

  def d_params(state):
    return {name: state.extra['heads'][name].params for name in HEADS}

  def d_loss(state, d_params_now, head_params, key, real, labels, fake):
    kr0, kr1, kf0, kf1, kz, kg = jax.random.split(key, 6)
    heads = state.extra['heads']
    # Real instances: two views of each real image.
    q = contrastive.embed(head_params['real'], features(d_params_now, view(kr0, real), labels),
                          inplanes)
    k_real = contrastive.embed(momentum_after(state, 'real', 1),
                               features(state.extra['d_ema'], view(kr1, real), labels), inplanes)
    k_real = jax.lax.stop_gradient(k_real)
    real_loss = contrastive.info_nce(q, k_real, heads['real'].queue, c.temperature)
    # Fake instances: G(z) and G(z + 0.15 delta), the latter without gradients.
    z_noisy = fake['z'] + c.z_noise * jax.random.normal(kz, fake['z'].shape)
    noisy, g_buffers = nets.generate(jax.lax.stop_gradient(state.g_params), fake['g_buffers'],
                                     z_noisy, fake['c'], kg, update_buffers=True,
                                     style_mixing_prob=config.loss.style_mixing_prob)
    q_feats = features(d_params_now, view(kf0, jax.lax.stop_gradient(fake['x'])), fake['c'])
    q_fake = contrastive.embed(head_params['fake'], q_feats, inplanes)
    m_fake = momentum_after(state, 'fake', fake_updates_before_d)
    k_fake = contrastive.embed(m_fake, features(state.extra['d_ema'],
                                                view(kf1, jax.lax.stop_gradient(noisy)),
                                                fake['c']), inplanes)
    fake_loss = contrastive.info_nce(q_fake, jax.lax.stop_gradient(k_fake), heads['fake'].queue,
                                     c.temperature)
    # update_q: the fake queue takes the momentum embedding of the queries (reference).
    fake_keys = jax.lax.stop_gradient(contrastive.embed(m_fake, q_feats, inplanes))
    loss = c.real_weight * real_loss + c.fake_weight * fake_loss
    aux = {'keys': {'real': k_real, 'fake': fake_keys}, 'g_buffers': g_buffers,
           'metrics': {'insgen/D_cl_real': real_loss, 'insgen/D_cl_fake': fake_loss}}
    return loss, aux

  def d_apply(state, head_grads, aux):
    """Momentum copies (with the heads' pre-update params), Adam on the heads, queues."""
    heads, opt = dict(state.extra['heads']), dict(state.extra['head_opt'])
    updates_count = {'real': 1, 'fake': fake_updates_before_d}
    metrics = {}
    for name in HEADS:
      head = heads[name]
      momentum = momentum_after(state, name, updates_count[name])
      updates, opt[name] = head_txs[name].update(head_grads[name], opt[name], head.params)
      keys = steps.gather_devices(aux['keys'][name])   # [devices, subs, B, 128]
      queue, ptr = contrastive.enqueue(head.queue, head.ptr, keys.reshape(-1, keys.shape[-1]))
      heads[name] = contrastive.HeadState(params=optax.apply_updates(head.params, updates),
                                          momentum_params=momentum, queue=queue, ptr=ptr)
    for key, value in aux['metrics'].items():
      metrics[key] = jax.lax.pmean(jnp.mean(value), steps.AXIS)
    return state.replace(extra={**state.extra, 'heads': heads, 'head_opt': opt}), metrics

  return steps.Extension(begin=begin, g_loss=g_loss, d_params=d_params, d_loss=d_loss,
                         d_apply=d_apply)


FAMILY = InsGenFamily()
