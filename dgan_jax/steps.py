"""Pure training steps of Diffusion-GAN, sharded over a ('data',) mesh with `jax.shard_map`.

One step runs the reference's phases in order: G main (non-saturating loss through the diffusion),
D main (real and fake diffused with independent t), lazy R1 on the clean reals through the
diffusion when `do_r1`, then the G_ema update. The state is replicated; the batch is split over
devices. Inside a device the local batch is cut into sub-batches of `batch_gpu` samples, the
reference's per-GPU batch: every network call is vmapped over them and every random draw of a
sub-batch derives from its global index, so the results do not depend on the device count.
Gradients come from differentiating the `pmean` of the per-device loss (jax-notes: a `pmean` of the
gradient instead would be device-count times too large).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from dgan_jax import diffusion, divergence
from dgan_jax.networks import Networks
from dgan_jax.train_state import TrainState

AXIS = 'data'
# Phase ids folded into the step key: each phase draws its own latents, t and noise.
PHASE_G_MAIN, PHASE_D_MAIN, PHASE_D_R1, PHASE_G_PL = 0, 1, 2, 3


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


def make_train_step(config: ml_collections.ConfigDict, nets: Networks, mesh: jax.sharding.Mesh,
                    g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    *, do_r1: bool, do_pl: bool = False):
  """Returns a jitted `step(state, batch) -> (state, metrics)`; batch = {'image', 'label'}.

  `do_pl` adds the lazy path-length phase after G main, `do_r1` the lazy R1 phase after D main
  (the host picks the variant from the step number, as the reference's phase intervals).
  """
  batch_size, batch_gpu = config.train.batch_size, config.train.batch_gpu
  local_batch = batch_size // mesh.size
  subs_per_device = local_batch // batch_gpu
  dcfg = config.diffusion
  gamma, r1_interval = config.loss.r1_gamma, config.loss.r1_interval
  subs_per_pass = config.train.subs_per_pass

  def map_subs(f, *mapped):
    """f over the local sub-batches: all at once (vmap), or `train.subs_per_pass` at a time with
    rematerialisation (gradient accumulation for batches larger than memory; same result)."""
    if not subs_per_pass or subs_per_pass >= subs_per_device:
      return jax.vmap(f)(*mapped)
    return jax.lax.map(lambda xs: jax.checkpoint(f)(*xs), mapped, batch_size=subs_per_pass)

  def sub_batches(x):
    return x.reshape((subs_per_device, batch_gpu) + x.shape[1:])

  def sub_keys(step_key, phase):
    """One key per local sub-batch, from its global index (= its t_epl pool)."""
    phase_key = jax.random.fold_in(step_key, phase)
    ids = jax.lax.axis_index(AXIS) * subs_per_device + jnp.arange(subs_per_device)
    return jax.vmap(lambda i: jax.random.fold_in(phase_key, i))(ids), ids

  def mean_over_devices(x):
    return jax.lax.pmean(jnp.mean(x), AXIS)

  def generate_and_score(g_params, g_buffers, d_params, ctrl, key, c, pool):
    """Fresh latents -> G -> diffusion -> D, for one sub-batch. Returns (logits, new G buffers)."""
    kz, kg, kd = jax.random.split(key, 3)
    z = jax.random.normal(kz, (batch_gpu, nets.z_dim), jnp.float32)
    x, buffers = nets.generate(g_params, g_buffers, z, c, kg, update_buffers=True,
                               style_mixing_prob=config.loss.style_mixing_prob)
    y, t = diffusion.diffuse(kd, x, ctrl.t_epl[pool], ctrl.T, dcfg)
    return nets.discriminate(d_params, y, c, t), buffers

  def merge_buffers(old, stacked):
    """Average the per-sub-batch buffer updates over sub-batches and devices; untouched leaves stay
    bit-identical. w_avg's update is linear in the batch mean, so this equals the global-batch update."""
    return jax.tree.map(
        lambda o, s: o + jax.lax.pmean(jnp.mean(s - o[None], axis=0), AXIS), old, stacked)

  def g_main(state, labels, step_key):
    keys, pools = sub_keys(step_key, PHASE_G_MAIN)

    def loss_fn(g_params):
      logits, buffers = map_subs(
          lambda k, c, pool: generate_and_score(g_params, state.g_buffers, state.d_params,
                                                state.diffusion, k, c, pool), keys, labels, pools)
      loss = mean_over_devices(jax.nn.softplus(-logits))
      return loss, (logits, buffers)

    (loss, (logits, buffers)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
    state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                          g_opt_state=g_opt_state,
                          g_buffers=merge_buffers(state.g_buffers, buffers))
    return state, {'loss/G': loss, 'scores/fake_G': mean_over_devices(logits),
                   'signs/fake_G': mean_over_devices(jnp.sign(logits))}

  def d_main(state, reals, labels, step_key):
    keys, pools = sub_keys(step_key, PHASE_D_MAIN)

    def per_sub(d_params, g_buffers, key, real, c, pool):
      k_fake, k_real = jax.random.split(key)
      fake_logits, buffers = generate_and_score(
          jax.lax.stop_gradient(state.g_params), g_buffers, d_params, state.diffusion, k_fake, c, pool)
      y, t = diffusion.diffuse(k_real, real, state.diffusion.t_epl[pool], state.diffusion.T, dcfg)
      return fake_logits, nets.discriminate(d_params, y, c, t), buffers

    def loss_fn(d_params):
      fake, real, buffers = map_subs(
          lambda k, x, c, pool: per_sub(d_params, state.g_buffers, k, x, c, pool),
          keys, reals, labels, pools)
      loss = mean_over_devices(jax.nn.softplus(fake)) + mean_over_devices(jax.nn.softplus(-real))
      return loss, (fake, real, buffers)

    (loss, (fake, real, buffers)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=d_opt_state,
                          g_buffers=merge_buffers(state.g_buffers, buffers))
    state = _accumulate_signs(state, real)
    return state, {'loss/D': loss,
                   'scores/real': mean_over_devices(real), 'scores/fake': mean_over_devices(fake),
                   'signs/real': mean_over_devices(jnp.sign(real)),
                   'signs/fake': mean_over_devices(jnp.sign(fake))}

  def d_r1(state, reals, labels, step_key):
    """Lazy R1: gamma/2 * |d sum D(diffuse(x0)) / d x0|^2 on the clean reals, times the interval."""
    keys, pools = sub_keys(step_key, PHASE_D_R1)

    def per_sub(d_params, key, real, c, pool):
      def summed_logits(x0):
        y, t = diffusion.diffuse(key, x0, state.diffusion.t_epl[pool], state.diffusion.T, dcfg)
        logits = nets.discriminate(d_params, y, c, t)
        return logits.sum(), logits
      grad_x, logits = jax.grad(summed_logits, has_aux=True)(real)
      penalty = jnp.sum(jnp.square(grad_x).reshape(batch_gpu, -1), axis=1)
      return penalty, logits

    def loss_fn(d_params):
      penalty, logits = map_subs(lambda k, x, c, pool: per_sub(d_params, k, x, c, pool),
                                 keys, reals, labels, pools)
      loss = mean_over_devices(penalty * (gamma / 2)) * r1_interval
      return loss, (penalty, logits)

    (loss, (penalty, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=d_opt_state)
    state = _accumulate_signs(state, logits)
    return state, {'loss/D_reg': loss, 'r1_penalty': mean_over_devices(penalty)}

  def g_pl(state, labels, step_key):
    """Lazy path-length regularization (reference Greg): pl_weight * (|J^T u| - pl_mean)^2, on
    batch_gpu / pl_batch_shrink samples per sub-batch, times the interval. pl_mean is one running
    mean over the global batch (the reference keeps one per GPU)."""
    keys, _ = sub_keys(step_key, PHASE_G_PL)
    loss_cfg = config.loss
    pl_batch = max(batch_gpu // loss_cfg.pl_batch_shrink, 1)

    def per_sub(g_params, key, c):
      kz, kpl = jax.random.split(key)
      z = jax.random.normal(kz, (pl_batch, nets.z_dim), jnp.float32)
      return nets.path_lengths(g_params, state.g_buffers, z, c[:pl_batch], kpl,
                               loss_cfg.style_mixing_prob)

    def loss_fn(g_params):
      lengths, buffers = map_subs(lambda k, c: per_sub(g_params, k, c), keys, labels)
      pl_mean = state.pl_mean + loss_cfg.pl_decay * (mean_over_devices(lengths) - state.pl_mean)
      penalty = jnp.square(lengths - pl_mean)
      loss = mean_over_devices(penalty * loss_cfg.pl_weight) * loss_cfg.pl_interval
      return loss, (jax.lax.stop_gradient(pl_mean), buffers, penalty)

    (loss, (pl_mean, buffers, penalty)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.g_params)
    updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
    state = state.replace(g_params=optax.apply_updates(state.g_params, updates),
                          g_opt_state=g_opt_state, pl_mean=pl_mean,
                          g_buffers=merge_buffers(state.g_buffers, buffers))
    return state, {'loss/G_reg': loss, 'pl_penalty': mean_over_devices(penalty)}

  def step(state: TrainState, batch):
    step_key = jax.random.fold_in(state.key, state.step)
    reals = sub_batches(to_model_input(batch['image']))
    labels = sub_batches(batch['label'].astype(jnp.float32))
    state, metrics = g_main(state, labels, step_key)
    if do_pl:
      state, pl_metrics = g_pl(state, labels, step_key)
      metrics.update(pl_metrics)
    state, d_metrics = d_main(state, reals, labels, step_key)
    metrics.update(d_metrics)
    if do_r1:
      state, r1_metrics = d_r1(state, reals, labels, step_key)
      metrics.update(r1_metrics)
    beta = ema_beta(config, state.images_seen)
    g_ema = jax.tree.map(lambda g, e: g + beta * (e - g), state.g_params, state.g_ema_params)
    state = state.replace(g_ema_params=g_ema, step=state.step + 1,
                          images_seen=state.images_seen + batch_size)
    metrics['ema_beta'] = beta
    metrics[divergence.KEY] = divergence.nonfinite_code(metrics, state)   # [reliability] in-graph
    return state, metrics

  sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
  return jax.jit(sharded, donate_argnums=0)


def _accumulate_signs(state: TrainState, real_logits: jax.Array) -> TrainState:
  """Adds this phase's real-sample signs (global sums) to the controller's r_d statistic."""
  sign_sum = jax.lax.psum(jnp.sum(jnp.sign(real_logits)), AXIS)
  count = jax.lax.psum(jnp.asarray(real_logits.size, jnp.float32), AXIS)
  return state.replace(diffusion=diffusion.accumulate(state.diffusion, sign_sum, count))


def make_controller_update(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """Jitted `state -> state` applying one adaptive-diffusion update (host calls it every interval)."""
  replicated = NamedSharding(mesh, P())

  @functools.partial(jax.jit, donate_argnums=0, out_shardings=replicated)
  def update(state: TrainState) -> TrainState:
    return state.replace(
        diffusion=diffusion.update(state.diffusion, config.diffusion, config.train.batch_size))
  return update
