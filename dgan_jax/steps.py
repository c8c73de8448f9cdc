"""Pure training steps of Diffusion-GAN, sharded over a ('data',) mesh with `jax.shard_map`.

A step runs the phases a family's schedule asks for, in the reference's order: G main (G's loss
through the diffusion), lazy path length (`pl`), D main (real and fake diffused with independent t),
lazy R1 on the clean reals through the diffusion (`r1`), then the G_ema update. The state is
replicated; the batch is split over devices. Inside a device the local batch is cut into sub-batches
of `batch_gpu` samples, the reference's per-GPU batch: every network call is vmapped over them and
every random draw of a sub-batch derives from its global index, so the results do not depend on the
device count. Gradients come from differentiating the `pmean` of the per-device loss (jax-notes: a
`pmean` of the gradient instead would be device-count times too large).

Losses (`config.loss.kind`): 'non_saturating' (StyleGAN2, DCGAN: softplus) or 'hinge' (SNGAN,
ProjectedGAN); D's logits may be per-patch ([N, K]); every loss averages over all of them.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from dgan_jax import diffusion, divergence
from dgan_jax.augment import state as augment_state
from dgan_jax.networks import Networks
from dgan_jax.train_state import TrainState

AXIS = 'data'
# Phase ids folded into the step key: each phase draws its own latents, labels, t and noise.
PHASE_G_MAIN, PHASE_D_MAIN, PHASE_D_R1, PHASE_G_PL = 0, 1, 2, 3
LOSS_KINDS = ('non_saturating', 'hinge')


@dataclasses.dataclass(frozen=True)
class Phases:
  """Which phases one compiled step runs (the host picks a variant from the step number)."""
  g: bool = True       # G main.
  pl: bool = False     # Lazy path-length regularization of G.
  d: bool = True       # D main.
  r1: bool = False     # Lazy R1 of D.


@dataclasses.dataclass(frozen=True)
class Extension:
  """What a family adds to the generic step (InsGen: contrastive terms, heads, queues, D_ema).

  Per-sub-batch functions run inside the phases' sub-batch map, so they see one reference GPU's
  samples; `fake` carries the sub-batch's generated images, latents, labels and G's buffers after
  generating them.

  begin(state) -> state                                  at the start of each step
  g_loss(state, g_params, key, fake) -> (loss, metrics)  added to G main's per-sub-batch loss
  d_params(state) -> pytree                              extra trainables of D main (heads)
  d_loss(state, d_params, extra, key, real, c, fake) -> (loss, aux)   added to D main's loss
                                                         (aux['g_buffers'] replaces G's buffers)
  d_apply(state, extra_grads, aux) -> (state, metrics)   after D main (head updates, queues)
  """
  begin: object = None
  g_loss: object = None
  d_params: object = None
  d_loss: object = None
  d_apply: object = None


def phase_schedule(config: ml_collections.ConfigDict):
  """(variants, select): every Phases a run needs, and `select(step) -> Phases`.

  G main runs every `train.n_dis` steps (1: every step; SNGAN: 5), path length every
  `loss.pl_interval` steps when its weight is > 0, D main every step, R1 every `loss.r1_interval`
  steps when its gamma is > 0 (the reference's lazy intervals: phase k runs when step % k == 0).
  """
  n_dis = int(config.train.get('n_dis', 1))
  pl_every = config.loss.pl_interval if config.loss.pl_weight > 0 else 0
  r1_every = config.loss.r1_interval if config.loss.r1_gamma > 0 else 0

  def select(step: int) -> Phases:
    g = step % n_dis == 0
    return Phases(g=g, pl=g and bool(pl_every) and step % pl_every == 0, d=True,
                  r1=bool(r1_every) and step % r1_every == 0)

  period = int(np.lcm.reduce([n_dis, pl_every or 1, r1_every or 1]))
  variants = sorted({select(s) for s in range(period)}, key=dataclasses.astuple)
  return variants, select


def make_mesh(devices=None) -> jax.sharding.Mesh:
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def ema_beta(config: ml_collections.ConfigDict, images_seen: jax.Array) -> jax.Array:
  """The reference's G_ema decay: 0.5 ** (batch / ema_nimg), ema_nimg ramped up by images seen."""
  ema_nimg = config.train.ema_kimg * 1000.0
  if config.train.ema_rampup:
    ema_nimg = jnp.minimum(ema_nimg, images_seen.astype(jnp.float32) * config.train.ema_rampup)
  return 0.5 ** (config.train.batch_size / jnp.maximum(ema_nimg, 1e-8))


def to_model_input(x: jax.Array) -> jax.Array:
  """uint8 images -> float32 in [-1, 1]; float data (the toy's points) passes unchanged."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 127.5 - 1.0
  return x.astype(jnp.float32)


def matmul_precision(config: ml_collections.ConfigDict) -> str:
  """'highest' (true float32 matmuls and convolutions; the reference trains with TF32 off) unless
  `model.allow_tf32` (TF32 on NVIDIA GPUs, bf16 passes on TPUs: faster, about 1e-3 relative)."""
  return 'default' if config.model.get('allow_tf32', False) else 'highest'


def g_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
  """Per-logit generator loss."""
  if kind == 'hinge':
    return -fake_logits
  return jax.nn.softplus(-fake_logits)


def d_loss_terms(kind: str, real_logits: jax.Array, fake_logits: jax.Array):
  """Per-logit discriminator loss terms (real, fake)."""
  if kind == 'hinge':
    return jax.nn.relu(1.0 - real_logits), jax.nn.relu(1.0 + fake_logits)
  return jax.nn.softplus(-real_logits), jax.nn.softplus(fake_logits)


# ---------------------------------------------------------------------------------------------------
# Sub-batches: the reference GPU as the unit of every network call and random draw.


class SubBatches:
  """Splits a device's batch into reference-GPU sub-batches and maps work over them."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    self.batch_size, self.batch_gpu = config.train.batch_size, config.train.batch_gpu
    self.per_device = self.batch_size // mesh.size // self.batch_gpu
    self.per_pass = config.train.subs_per_pass

  def split(self, x):
    return x.reshape((self.per_device, self.batch_gpu) + x.shape[1:])

  def keys(self, step_key, phase):
    """One key per local sub-batch from its global index (= its t_epl pool); returns (keys, ids)."""
    phase_key = jax.random.fold_in(step_key, phase)
    ids = jax.lax.axis_index(AXIS) * self.per_device + jnp.arange(self.per_device)
    return jax.vmap(lambda i: jax.random.fold_in(phase_key, i))(ids), ids

  def map(self, f, *mapped):
    """f over the local sub-batches: all at once (vmap), or `train.subs_per_pass` at a time with
    rematerialisation (gradient accumulation for batches larger than memory; same result)."""
    if not self.per_pass or self.per_pass >= self.per_device:
      return jax.vmap(f)(*mapped)
    return jax.lax.map(lambda xs: jax.checkpoint(f)(*xs), mapped, batch_size=self.per_pass)

  @staticmethod
  def mean(x):
    """Mean over everything on every device."""
    return jax.lax.pmean(jnp.mean(x), AXIS)

  @staticmethod
  def merge(old, stacked):
    """Average per-sub-batch state updates over sub-batches and devices (w_avg, BatchNorm running
    statistics, spectral-norm vectors); untouched leaves stay bit-identical. w_avg's update is
    linear in the batch mean, so this equals the global-batch update. Integer leaves (BatchNorm's
    num_batches_tracked) keep their dtype (rounded), so the next step's input types are the same
    and the step does not compile twice."""
    def merge_leaf(o, s):
      new = o + jax.lax.pmean(jnp.mean(s - o[None], axis=0), AXIS)
      return jnp.round(new).astype(o.dtype) if jnp.issubdtype(o.dtype, jnp.integer) else new
    return jax.tree.map(merge_leaf, old, stacked)


def label_sampler(c_dim: int, label_dist=None):
  """`draw(key, n) -> [n, c_dim]` labels of generated samples.

  The reference draws each fake label as the label of a uniformly drawn dataset item (all_gen_c),
  i.e. from the dataset's label distribution, independently in each phase. `label_dist` is
  (labels [K, c_dim], probabilities [K]) of the training set (data.pipeline.label_distribution);
  None means uniform over the one-hot classes.
  """
  if c_dim == 0:
    return lambda key, n: jnp.zeros((n, 0), jnp.float32)
  if label_dist is None:
    labels, probs = np.eye(c_dim, dtype=np.float32), np.full((c_dim,), 1.0 / c_dim)
  else:
    labels, probs = (np.asarray(a) for a in label_dist)
  table = jnp.asarray(labels, jnp.float32)
  logits = jnp.log(jnp.asarray(probs, jnp.float32))

  def draw(key, n):
    return table[jax.random.categorical(key, logits, shape=(n,))]
  return draw


# ---------------------------------------------------------------------------------------------------
# The training step.


def make_train_step(config: ml_collections.ConfigDict, nets: Networks, mesh: jax.sharding.Mesh,
                    g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    phases: Phases, label_dist=None, extension: Extension | None = None):
  """Returns a jitted `step(state, batch) -> (state, metrics)`; batch = {'image', 'label'}."""
  ext = extension or Extension()
  subs = SubBatches(config, mesh)
  batch_size, batch_gpu = subs.batch_size, subs.batch_gpu
  loss_cfg = config.loss
  kind = loss_cfg.get('kind', 'non_saturating')
  gamma, r1_interval = loss_cfg.r1_gamma, loss_cfg.r1_interval
  draw_labels = label_sampler(nets.c_dim, label_dist)
  mean = SubBatches.mean

  def generate_and_score(g_params, g_buffers, d_params, d_buffers, state, key, pool):
    """Fresh latents and labels -> G -> diffusion -> D, for one sub-batch.
    Returns (logits, new G buffers, new D buffers, fake = {'x', 'z', 'c'})."""
    kz, kc, kg, kd = jax.random.split(key, 4)
    z = jax.random.normal(kz, (batch_gpu, nets.z_dim), jnp.float32)
    c = draw_labels(kc, batch_gpu)
    x, g_buffers = nets.generate(g_params, g_buffers, z, c, kg, update_buffers=True,
                                 style_mixing_prob=loss_cfg.style_mixing_prob)
    logits, d_buffers = nets.score(d_params, d_buffers, x, c, kd, state, pool, config,
                                   update_buffers=True)
    return logits, g_buffers, d_buffers, {'x': x, 'z': z, 'c': c, 'g_buffers': g_buffers}

  def g_main(state, step_key):
    keys, pools = subs.keys(step_key, PHASE_G_MAIN)

    def per_sub(g_params, key, pool):
      k_main, k_ext = jax.random.split(key)
      logits, g_buffers, d_buffers, fake = generate_and_score(
          g_params, state.g_buffers, state.d_params, state.d_buffers, state, k_main, pool)
      extra, extra_metrics = (ext.g_loss(state, g_params, k_ext, fake) if ext.g_loss
                              else (jnp.zeros(()), {}))
      return logits, g_buffers, d_buffers, extra, extra_metrics

    def loss_fn(g_params):
      logits, g_buffers, d_buffers, extra, extra_metrics = subs.map(
          lambda k, pool: per_sub(g_params, k, pool), keys, pools)
      loss = mean(g_loss(kind, logits)) + mean(extra)
      return loss, (logits, g_buffers, d_buffers, extra_metrics)

    (loss, (logits, g_buffers, d_buffers, extra_metrics)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
    state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                          g_opt_state=g_opt_state,
                          g_buffers=subs.merge(state.g_buffers, g_buffers),
                          d_buffers=subs.merge(state.d_buffers, d_buffers))
    return state, {'loss/G': loss, 'scores/fake_G': mean(logits),
                   'signs/fake_G': mean(jnp.sign(logits)),
                   **{k: mean(v) for k, v in extra_metrics.items()}}

  def d_main(state, reals, labels, step_key):
    keys, pools = subs.keys(step_key, PHASE_D_MAIN)

    def per_sub(d_params, extra_params, key, real, c, pool):
      k_fake, k_real, k_ext = jax.random.split(key, 3)
      fake, g_buffers, d_buffers, fake_batch = generate_and_score(
          jax.lax.stop_gradient(state.g_params), state.g_buffers, d_params, state.d_buffers,
          state, k_fake, pool)
      real_logits, d_buffers = nets.score(d_params, d_buffers, real, c, k_real, state, pool,
                                          config, update_buffers=True)
      extra, aux = (ext.d_loss(state, d_params, extra_params, k_ext, real, c, fake_batch)
                    if ext.d_loss else (jnp.zeros(()), {}))
      if 'g_buffers' in aux:      # the extension ran G again (training mode) after the fakes
        aux = dict(aux)
        g_buffers = aux.pop('g_buffers')
      return fake, real_logits, g_buffers, d_buffers, extra, aux

    def loss_fn(d_params, extra_params):
      fake, real, g_buffers, d_buffers, extra, aux = subs.map(
          lambda k, x, c, pool: per_sub(d_params, extra_params, k, x, c, pool),
          keys, reals, labels, pools)
      real_terms, fake_terms = d_loss_terms(kind, real, fake)
      loss = mean(fake_terms) + mean(real_terms) + mean(extra)
      return loss, (fake, real, g_buffers, d_buffers, aux)

    extra_params = ext.d_params(state) if ext.d_params else {}
    (loss, (fake, real, g_buffers, d_buffers, aux)), (grads, extra_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.d_params, extra_params)
    updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=d_opt_state,
                          g_buffers=subs.merge(state.g_buffers, g_buffers),
                          d_buffers=subs.merge(state.d_buffers, d_buffers))
    state = _accumulate_signs(state, real)
    metrics = {'loss/D': loss, 'scores/real': mean(real), 'scores/fake': mean(fake),
               'signs/real': mean(jnp.sign(real)), 'signs/fake': mean(jnp.sign(fake))}
    if ext.d_apply:
      state, extra_metrics = ext.d_apply(state, extra_grads, aux)
      metrics.update(extra_metrics)
    return state, metrics

  def d_r1(state, reals, labels, step_key):
    """Lazy R1: gamma/2 * |d sum D(diffuse(x0)) / d x0|^2 on the clean reals, times the interval."""
    keys, pools = subs.keys(step_key, PHASE_D_R1)

    def per_sub(d_params, key, real, c, pool):
      def summed_logits(x0):
        logits, d_buffers = nets.score(d_params, state.d_buffers, x0, c, key, state, pool,
                                       config, update_buffers=True)
        return logits.sum(), (logits, d_buffers)
      grad_x, (logits, d_buffers) = jax.grad(summed_logits, has_aux=True)(real)
      penalty = jnp.sum(jnp.square(grad_x).reshape(batch_gpu, -1), axis=1)
      return penalty, logits, d_buffers

    def loss_fn(d_params):
      penalty, logits, d_buffers = subs.map(
          lambda k, x, c, pool: per_sub(d_params, k, x, c, pool), keys, reals, labels, pools)
      loss = mean(penalty * (gamma / 2)) * r1_interval
      return loss, (penalty, logits, d_buffers)

    (loss, (penalty, logits, d_buffers)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.d_params)
    updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=d_opt_state,
                          d_buffers=subs.merge(state.d_buffers, d_buffers))
    state = _accumulate_signs(state, logits)
    return state, {'loss/D_reg': loss, 'r1_penalty': mean(penalty)}

  def g_pl(state, step_key):
    """Lazy path-length regularization (reference Greg): pl_weight * (|J^T u| - pl_mean)^2, on
    batch_gpu / pl_batch_shrink samples per sub-batch, times the interval. pl_mean is one running
    mean over the global batch (the reference keeps one per GPU)."""
    keys, _ = subs.keys(step_key, PHASE_G_PL)
    pl_batch = max(batch_gpu // loss_cfg.pl_batch_shrink, 1)

    def per_sub(g_params, key):
      kz, kc, kpl = jax.random.split(key, 3)
      z = jax.random.normal(kz, (pl_batch, nets.z_dim), jnp.float32)
      return nets.path_lengths(g_params, state.g_buffers, z, draw_labels(kc, pl_batch), kpl,
                               loss_cfg.style_mixing_prob)

    def loss_fn(g_params):
      lengths, buffers = subs.map(lambda k: per_sub(g_params, k), keys)
      pl_mean = state.pl_mean + loss_cfg.pl_decay * (mean(lengths) - state.pl_mean)
      penalty = jnp.square(lengths - pl_mean)
      loss = mean(penalty * loss_cfg.pl_weight) * loss_cfg.pl_interval
      return loss, (jax.lax.stop_gradient(pl_mean), buffers, penalty)

    (loss, (pl_mean, buffers, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.g_params)
    updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
    state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                          g_opt_state=g_opt_state, pl_mean=pl_mean,
                          g_buffers=subs.merge(state.g_buffers, buffers))
    return state, {'loss/G_reg': loss, 'pl_penalty': mean(penalty)}

  def step(state: TrainState, batch):
    with jax.default_matmul_precision(matmul_precision(config)):
      return step_body(state, batch)

  def step_body(state: TrainState, batch):
    step_key = jax.random.fold_in(state.key, state.step)
    if ext.begin:
      state = ext.begin(state)
    reals = subs.split(to_model_input(batch['image']))
    labels = subs.split(batch['label'].astype(jnp.float32))
    metrics = {}
    if phases.g:
      state, m = g_main(state, step_key)
      metrics.update(m)
    if phases.pl:
      state, m = g_pl(state, step_key)
      metrics.update(m)
    if phases.d:
      state, m = d_main(state, reals, labels, step_key)
      metrics.update(m)
    if phases.r1:
      state, m = d_r1(state, reals, labels, step_key)
      metrics.update(m)
    beta = ema_beta(config, state.images_seen)
    g_ema = jax.tree.map(lambda g, e: g + beta * (e - g), state.g_params, state.g_ema_params)
    state = state.replace(g_ema_params=g_ema, step=state.step + 1,
                          images_seen=state.images_seen + batch_size)
    metrics['ema_beta'] = beta
    metrics[divergence.KEY] = divergence.nonfinite_code(metrics, state)   # [reliability] in-graph
    return state, metrics

  sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
  return jax.jit(sharded, donate_argnums=0)


def gather_devices(x: jax.Array) -> jax.Array:
  """[devices, *x.shape]: every device's `x` in device order, the same (replicated) on all of them.

  A psum of one-hot slots rather than `lax.all_gather`, whose result shard_map types as
  device-varying and so cannot land in the replicated train state."""
  slots = jnp.zeros((jax.lax.axis_size(AXIS),) + x.shape, x.dtype)
  return jax.lax.psum(slots.at[jax.lax.axis_index(AXIS)].set(x), AXIS)


def _accumulate_signs(state: TrainState, real_logits: jax.Array) -> TrainState:
  """Adds this phase's real-sample signs (global sums) to the controllers' r statistics."""
  sign_sum = jax.lax.psum(jnp.sum(jnp.sign(real_logits)), AXIS)
  count = jax.lax.psum(jnp.asarray(real_logits.size, jnp.float32), AXIS)
  return state.replace(diffusion=diffusion.accumulate(state.diffusion, sign_sum, count),
                       augment=augment_state.accumulate(state.augment, sign_sum, count))


def controller_interval(config: ml_collections.ConfigDict) -> int:
  """Steps between controller updates: the diffusion's (its level also sets the ADA p), or ADA's
  own when only ADA adapts (StyleGAN2 + ADA); 0 when nothing adapts."""
  if config.diffusion.enabled:
    return config.diffusion.ada_interval
  if config.get('augment') and config.augment.kind == 'ada':
    return config.augment.ada_interval
  return 0


def make_controller_update(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """Jitted `state -> state` applying one controller update (the host calls it every interval):
  the adaptive diffusion and the ADA p that follows it (min(p, ada_maxp)), or ADA's own rule."""
  replicated = NamedSharding(mesh, P())
  batch = config.train.batch_size

  @functools.partial(jax.jit, donate_argnums=0, out_shardings=replicated)
  def update(state: TrainState) -> TrainState:
    if config.diffusion.enabled:
      ctrl = diffusion.update(state.diffusion, config.diffusion, batch)
      aug = state.augment
      if config.get('augment') and config.augment.kind == 'ada':
        aug = augment_state.follow_diffusion(aug, ctrl.p, config.augment)
      return state.replace(diffusion=ctrl, augment=aug.replace(
          sign_sum=jnp.zeros_like(aug.sign_sum), sign_count=jnp.zeros_like(aug.sign_count)))
    return state.replace(augment=augment_state.update(state.augment, config.augment, batch))
  return update
