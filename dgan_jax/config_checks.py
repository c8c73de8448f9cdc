"""Config validation: every bad value fails here, with the fix, before anything is compiled."""
from __future__ import annotations

import pathlib

import ml_collections

from dgan_jax import augment, diffusion, families
from dgan_jax.augment import ada
from dgan_jax.steps import LOSS_KINDS


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError naming each problem in `config` for a run on `num_devices` devices."""
  diffusion.validate_config(config.diffusion)
  if 'augment' in config:   # run configs saved before augmentation existed have none
    augment.validate_config(config.augment)
  problems = []
  name = families.family_name(config)
  if name not in families.FAMILIES:
    problems.append(f'model.family={name!r} is unknown; use one of {sorted(families.FAMILIES)}.')
  else:
    problems.extend(families.get(name).check(config))
  t = config.train
  if t.batch_size < 1 or t.batch_gpu < 1 or t.batch_size % t.batch_gpu:
    problems.append(f'train.batch_size={t.batch_size} must be a positive multiple of '
                    f'train.batch_gpu={t.batch_gpu} (the reference per-GPU batch).')
  elif t.batch_size % (num_devices * t.batch_gpu):
    problems.append(
        f'train.batch_size={t.batch_size} cannot be split over {num_devices} devices in whole '
        f'sub-batches of train.batch_gpu={t.batch_gpu}: use a batch_size that is a multiple of '
        f'{num_devices * t.batch_gpu}, or a batch_gpu that divides {t.batch_size // num_devices}.')
  resume_from = t.get('resume_from', '')
  if resume_from and not pathlib.Path(resume_from).expanduser().is_file():
    problems.append(f'train.resume_from={resume_from!r}: no such file; give the path of a reference '
                    'or stylegan2-ada network pickle (.pkl), or leave it empty.')
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
  kind = loss.get('kind', 'non_saturating')
  if kind not in LOSS_KINDS:
    problems.append(f'loss.kind={kind!r} is unknown; use one of {LOSS_KINDS}.')
  n_dis = t.get('n_dis', 1)
  if not isinstance(n_dis, int) or n_dis < 1:
    problems.append(f'train.n_dis={n_dis!r} must be an integer >= 1 (D steps per G step).')
  aug = config.get('augment')
  if aug is not None and aug.kind != 'none':
    if name == 'toy':
      problems.append(f"augment.kind={aug.kind!r} augments images; the toy has none: set "
                      "augment.kind='none'.")
    elif aug.kind == 'ada':
      res, channels = config.data.resolution, config.data.channels
      try:
        ada.check_shape((1, res, res, channels), augment.ada_spec(aug))
      except ValueError as e:
        problems.append(f'augment.spec={aug.spec!r} with data.resolution={res}, '
                        f'data.channels={channels}: {e}')
  if problems:
    raise ValueError('Bad config:\n  ' + '\n  '.join(problems))
