"""Config validation: every bad value fails here, with the fix, before anything is compiled."""
from __future__ import annotations

import ml_collections

from dgan_jax import augment, diffusion
from dgan_jax.augment import ada

EXPERIMENTS = ('toy', 'image')
TOY_T_EMBEDDINGS = ('scaled', 'sinusoidal')


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError naming each problem in `config` for a run on `num_devices` devices."""
  diffusion.validate_config(config.diffusion)
  if 'augment' in config:   # run configs saved before augmentation existed have none
    augment.validate_config(config.augment)
  problems = []
  if config.experiment not in EXPERIMENTS:
    problems.append(f'experiment={config.experiment!r} is unknown; use one of {EXPERIMENTS}.')
  t = config.train
  if t.batch_size < 1 or t.batch_gpu < 1 or t.batch_size % t.batch_gpu:
    problems.append(f'train.batch_size={t.batch_size} must be a positive multiple of '
                    f'train.batch_gpu={t.batch_gpu} (the reference per-GPU batch).')
  elif t.batch_size % (num_devices * t.batch_gpu):
    problems.append(
        f'train.batch_size={t.batch_size} cannot be split over {num_devices} devices in whole '
        f'sub-batches of train.batch_gpu={t.batch_gpu}: use a batch_size that is a multiple of '
        f'{num_devices * t.batch_gpu}, or a batch_gpu that divides {t.batch_size // num_devices}.')
  if t.total_kimg <= 0:
    problems.append(f'train.total_kimg={t.total_kimg} must be > 0.')
  if t.ema_kimg < 0:
    problems.append(f'train.ema_kimg={t.ema_kimg} must be >= 0 (0: G_ema = G).')
  loss = config.loss
  if loss.r1_gamma < 0 or loss.r1_interval < 0:
    problems.append(f'loss.r1_gamma={loss.r1_gamma} and loss.r1_interval={loss.r1_interval} must be >= 0.')
  o = config.optim
  if o.g_lr <= 0 or o.d_lr <= 0:
    problems.append(f'optim.g_lr={o.g_lr} and optim.d_lr={o.d_lr} must be > 0.')
  if not (0 <= o.b1 < 1 and 0 <= o.b2 < 1):
    problems.append(f'optim.b1={o.b1}, optim.b2={o.b2} must be in [0, 1).')
  aug = config.get('augment')
  if aug is not None and aug.kind != 'none':
    if config.experiment != 'image':
      problems.append(f'augment.kind={aug.kind!r} augments images; the {config.experiment!r} '
                      "experiment has none: set augment.kind='none'.")
    elif aug.kind == 'ada':
      res, channels = config.data.resolution, config.data.channels
      try:
        ada.check_shape((1, res, res, channels), augment.ada_spec(aug))
      except ValueError as e:
        problems.append(f'augment.spec={aug.spec!r} with data.resolution={res}, '
                        f'data.channels={channels}: {e}')
  if config.experiment == 'toy':
    kind = config.model.get('t_embedding', 'scaled')
    if kind not in TOY_T_EMBEDDINGS:
      problems.append(f'model.t_embedding={kind!r} is unknown for the toy; use one of '
                      f'{TOY_T_EMBEDDINGS}.')
  if problems:
    raise ValueError('Bad config:\n  ' + '\n  '.join(problems))
