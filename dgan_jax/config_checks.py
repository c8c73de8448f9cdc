"""Config validation: every bad value fails here, with the fix, before anything is compiled."""
from __future__ import annotations

import math
import pathlib

import ml_collections

from dgan_jax import augment, diffusion, errors, families
from dgan_jax.augment import ada
from dgan_jax.steps import LOSS_KINDS

MAX_SEED = 2**31 - 1

# Fields that must be whole numbers >= the bound (section, field, bound, what it means).
_INTEGERS = (
    ('train', 'log_every_steps', 1, 'steps between progress logs'),
    ('train', 'keep_checkpoints', 1, 'checkpoints kept (0 would keep none: nothing to resume)'),
    ('train', 'subs_per_pass', 0, 'sub-batches per pass (0 = all at once)'),
    ('eval', 'batch_size', 1, 'feature-extraction batch'),
    ('loss', 'pl_batch_shrink', 1, 'path-length batch divisor'),
    ('loss', 'pl_interval', 0, 'lazy path-length interval (0 disables)'),
)
# Intervals in kimg: 0 means "never / only at the end", a negative value is a typo.
_NON_NEGATIVE = (
    ('train', 'checkpoint_every_kimg'), ('train', 'sample_every_kimg'), ('eval', 'every_kimg'),
    ('loss', 'pl_weight'),
)


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises a UserError naming each problem in `config` for a run on `num_devices` devices."""
  problems = _non_finite(config.to_dict())
  if problems:   # NaN/inf would also slip through every comparison below.
    raise errors.UserError('Bad config:\n  ' + '\n  '.join(problems))
  try:
    diffusion.validate_config(config.diffusion)
    if 'augment' in config:   # run configs saved before augmentation existed have none
      augment.validate_config(config.augment)
  except ValueError as e:
    raise errors.UserError(str(e)) from None
  name = families.family_name(config)
  if name not in families.FAMILIES:
    problems.append(f'model.family={name!r} is unknown; use one of {sorted(families.FAMILIES)}.')
  else:
    problems.extend(families.get(name).check(config))
  if not _is_int(config.seed) or not 0 <= config.seed <= MAX_SEED:
    problems.append(f'seed={config.seed!r} must be an integer in [0, {MAX_SEED}].')
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
  for section, field, bound, meaning in _INTEGERS:
    value = config[section].get(field, bound)
    if not _is_int(value) or value < bound:
      problems.append(f'{section}.{field}={value!r} must be an integer >= {bound} ({meaning}).')
  for section, field in _NON_NEGATIVE:
    value = config[section].get(field, 0)
    if value < 0:
      problems.append(f'{section}.{field}={value} must be >= 0 (0 = never, or only at the end).')
  if config.eval.get('seed', 0) < 0:
    problems.append(f'eval.seed={config.eval.seed} must be >= 0.')
  loss = config.loss
  if loss.r1_gamma < 0 or loss.r1_interval < 0:
    problems.append(f'loss.r1_gamma={loss.r1_gamma} and loss.r1_interval={loss.r1_interval} must be >= 0.')
  for field in ('style_mixing_prob', 'pl_decay'):
    if not 0 <= loss.get(field, 0) <= 1:
      problems.append(f'loss.{field}={loss[field]} must be in [0, 1].')
  o = config.optim
  if o.g_lr <= 0 or o.d_lr <= 0:
    problems.append(f'optim.g_lr={o.g_lr} and optim.d_lr={o.d_lr} must be > 0.')
  if not (0 <= o.b1 < 1 and 0 <= o.b2 < 1):
    problems.append(f'optim.b1={o.b1}, optim.b2={o.b2} must be in [0, 1).')
  if o.eps <= 0:
    problems.append(f'optim.eps={o.eps} must be > 0 (Adam divides by sqrt(v) + eps; '
                    'reference: 1e-8).')
  if config.data.get('max_images', 0) is not None and config.data.get('max_images', 0) < 0:
    problems.append(f'data.max_images={config.data.max_images} must be >= 0 (0 = all).')
  if config.data.get('prefetch', 0) < 0:
    problems.append(f'data.prefetch={config.data.prefetch} must be >= 0.')
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
    raise errors.UserError('Bad config:\n  ' + '\n  '.join(problems))


def check_dataset(config: ml_collections.ConfigDict, info) -> None:
  """The dataset (`pipeline.DatasetInfo`) against the config: image shape, at least one batch."""
  problems = []
  if info.resolution != config.data.resolution or info.channels != config.data.channels:
    problems.append(
        f'The dataset has {info.resolution}x{info.resolution}x{info.channels} images but the config '
        f'says data.resolution={config.data.resolution}, data.channels={config.data.channels}; '
        f'set --config.data.resolution={info.resolution} --config.data.channels={info.channels} '
        '(and a preset that fits), or use a dataset of that size.')
  if info.num_images < config.train.batch_size:
    problems.append(
        f'The dataset has {info.num_images} images (after data.max_images), fewer than one batch '
        f'of train.batch_size={config.train.batch_size}; use a larger dataset (or max_images), or a '
        'smaller batch_size.')
  if problems:
    raise errors.UserError('\n'.join(problems))


def _non_finite(tree: dict, prefix: str = '') -> list[str]:
  """Every float field that is NaN or infinite (validation would otherwise accept them)."""
  problems = []
  for key, value in tree.items():
    if isinstance(value, dict):
      problems += _non_finite(value, f'{prefix}{key}.')
    elif isinstance(value, (tuple, list)):   # e.g. augment.strengths.imgfilter_bands
      problems += _non_finite({f'{key}[{i}]': v for i, v in enumerate(value)}, prefix)
    elif isinstance(value, float) and not math.isfinite(value):
      problems.append(f'{prefix}{key}={value} is not a finite number; give a real value.')
  return problems


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)
