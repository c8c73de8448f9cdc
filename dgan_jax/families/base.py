"""What a model family gives the shared training loop, with the defaults most families use.

A family is a set of networks plus its losses and phases. The loop (train.py) only talks to this
interface, so a new family is one module set and a config, never a branch in the loop:

  check(config)                     family-specific config problems (strings), before any work
  prepare(config)                   dataset-dependent config (label count), before compiling
  build_networks(config)            Networks (G, D and how the steps call them)
  make_optimizers(config)           (g_tx, d_tx)
  init_state(config, nets, g_tx, d_tx) -> TrainState (pure; same seed, same state)
  transfer_state(config, fresh, path) networks from a pickle into a fresh state (resume_from)
  make_steps(config, nets, mesh, g_tx, d_tx, label_dist) -> Steps (compiled variants + selector)
  data_iterator(config, start_step) this host's batches from `start_step` (exact resume)
  label_distribution(config)        the training labels' distribution (fake labels are drawn from it)
  sample_grid(config, nets, workdir) periodic sample images, or None
  final_report(...)                 outputs of a finished run (the toy's figures)
  export_state_dicts(config, state, with_d), export_kwargs(config, with_d)
                                    the reference's state dicts and constructor kwargs (export)
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dgan_jax import diffusion, errors, paths, steps
from dgan_jax.networks import Networks
from dgan_jax.train_state import TrainState, lazy_adam


@dataclasses.dataclass(frozen=True)
class Steps:
  """The compiled step variants of a run and which one a step number uses."""
  variants: dict                         # steps.Phases -> jitted step(state, batch)
  select: Callable[[int], steps.Phases]

  def __call__(self, step: int, state, batch):
    return self.variants[self.select(step)](state, batch)


class Family:
  """Defaults shared by the families; subclasses override what differs."""
  name = ''

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    del config
    return []

  def prepare(self, config: ml_collections.ConfigDict) -> None:
    del config

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    raise NotImplementedError

  def make_optimizers(self, config: ml_collections.ConfigDict):
    """Adam for G and D with the lazy-regularization rescaling of their intervals (reference)."""
    o, loss = config.optim, config.loss
    g_tx = lazy_adam(o.g_lr, o.b1, o.b2, o.eps, loss.pl_interval)
    d_tx = lazy_adam(o.d_lr, o.b1, o.b2, o.eps, loss.r1_interval)
    return g_tx, d_tx

  def init_state(self, config: ml_collections.ConfigDict, nets: Networks, g_tx, d_tx) -> TrainState:
    """A fresh state from `config.seed` (pure: the same seed gives the same state everywhere)."""
    key = jax.random.key(config.seed)
    init_key, ctrl_key, run_key = jax.random.split(key, 3)
    g_params, g_buffers, d_params, d_buffers = nets.init(init_key, config.train.batch_gpu)
    num_pools = config.train.batch_size // config.train.batch_gpu
    ctrl = diffusion.init_state(ctrl_key, config.diffusion, num_pools)
    return TrainState(
        step=jnp.zeros((), jnp.int32), images_seen=jnp.zeros((), jnp.int32),
        g_params=g_params, g_buffers=g_buffers, g_ema_params=g_params, d_params=d_params,
        d_buffers=d_buffers, g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
        diffusion=ctrl, augment=init_augment_state(config, ctrl),
        pl_mean=jnp.zeros((), jnp.float32), key=run_key, extra=self.init_extra(config, nets))

  def transfer_state(self, config: ml_collections.ConfigDict, fresh: TrainState, path: str):
    """`config.train.resume_from`: a fresh state with networks from a pickle; returns (state,
    notes). Families without a reference pickle format refuse."""
    del fresh
    raise errors.UserError(f'config.train.resume_from={path!r}: the {self.name!r} family cannot '
                           'start from a pickle; leave train.resume_from empty.')

  def init_extra(self, config: ml_collections.ConfigDict, nets: Networks) -> dict:
    del config, nets
    return {}

  def make_steps(self, config: ml_collections.ConfigDict, nets: Networks, mesh, g_tx, d_tx,
                 label_dist=None) -> Steps:
    variants, select = steps.phase_schedule(config)
    extension = self.extension(config, nets, mesh)
    return Steps({p: steps.make_train_step(config, nets, mesh, g_tx, d_tx, p, label_dist,
                                           extension) for p in variants}, select)

  def extension(self, config: ml_collections.ConfigDict, nets: Networks, mesh):
    """A steps.Extension with the family's additions to the generic step, or None."""
    del config, nets, mesh
    return None

  def data_iterator(self, config: ml_collections.ConfigDict, start_step: int):
    raise NotImplementedError

  def label_distribution(self, config: ml_collections.ConfigDict):
    del config
    return None

  def sample_grid(self, config: ml_collections.ConfigDict, nets: Networks, workdir: paths.PathLike):
    del config, nets, workdir
    return None

  def final_report(self, config, nets: Networks, state: TrainState, workdir: paths.PathLike, writer):
    del config, nets, state, workdir, writer

  def export_state_dicts(self, config: ml_collections.ConfigDict, state: TrainState,
                         with_d: bool) -> dict:
    """{'G', 'G_ema'[, 'D']}: the reference's state dicts of the run's networks (export)."""
    del state, with_d
    raise errors.UserError(f'The {self.name!r} family has no reference format to export to '
                           f'(model.family={config.model.family!r}).')

  def export_kwargs(self, config: ml_collections.ConfigDict, with_d: bool) -> dict:
    """{'G_kwargs'[, 'D_kwargs']}: the reference's constructor arguments of the networks."""
    del config, with_d
    return {}


class ImageFamily(Family):
  """Families trained on image datasets (zip/folder or tfds), with sample grids and metrics."""

  def prepare(self, config: ml_collections.ConfigDict) -> None:
    """Checks the dataset against the config (before compiling) and takes its label count."""
    from dgan_jax.data import pipeline
    resolve_data_source(config)
    from dgan_jax import config_checks   # (config_checks imports the families)
    info = pipeline.dataset_info(config.data)
    config_checks.check_dataset(config, info)   # shape, and at least one batch of images
    config.model.c_dim = info.c_dim if config.data.use_labels else 0

  def data_iterator(self, config: ml_collections.ConfigDict, start_step: int):
    from dgan_jax.data import pipeline
    return pipeline.make_train_iterator(config.data, config.train.batch_size, config.seed,
                                        jax.process_index(), jax.process_count(), start_step)

  def label_distribution(self, config: ml_collections.ConfigDict):
    if not config.model.get('c_dim', 0):
      return None
    from dgan_jax.data import pipeline
    return pipeline.label_distribution(config.data, config.seed)

  def sample_grid(self, config: ml_collections.ConfigDict, nets: Networks, workdir: paths.PathLike):
    from dgan_jax import grids
    return grids.SampleGrid(config, nets, workdir)


def init_augment_state(config: ml_collections.ConfigDict, ctrl: diffusion.DiffusionState):
  """The ADA controller at its initial p; with diffusion, p = min(diffusion p, ada_maxp) from the
  start (the reference copies it only at its first diffusion update). Only ADA reads p."""
  from dgan_jax.augment import state as augment_state
  from configs import base
  cfg = config.augment if 'augment' in config else base.get_augment_config()
  aug = augment_state.init_state(cfg)
  follows = config.diffusion.enabled and cfg.kind == 'ada'
  return augment_state.follow_diffusion(aug, ctrl.p, cfg) if follows else aug


def data_source(source: str, path: str) -> str:
  """`data.source='auto'`: the folder/zip at `data.path` when one is given, else tfds `data.name`."""
  if source == 'auto':
    return 'zip' if path else 'tfds'
  return source


def resolve_data_source(config: ml_collections.ConfigDict) -> None:
  config.data.source = data_source(config.data.source, config.data.path)


def size_problems(section: ml_collections.ConfigDict, fields, prefix: str, minimum: int = 1
                  ) -> list[str]:
  """Problems for the network sizes `fields` of `section` that are not integers >= `minimum` (a
  width of 0 builds nothing useful and fails deep in flax); absent fields are skipped."""
  return [f'{prefix}{field}={section[field]!r} must be an integer >= {minimum}.'
          for field in fields if field in section and (
              not isinstance(section[field], int) or isinstance(section[field], bool)
              or section[field] < minimum)]
