"""The augmentation a config asks for: validation and one entry point for the training step.

`augment.kind` selects it, as the reference's `--aug`: 'none' (identity), 'ada' (the stylegan2-ada
pipe at probability p, `ada.py`) or 'diffaug' (DiffAugment, `diffaug.py`). The reference applies it
to every discriminator input before the diffusion noise (real and generated, in G's and D's phases
and in R1), differentiably, so G's gradient flows through it.
"""
from __future__ import annotations

import jax
import ml_collections

from dgan_jax.augment import ada, diffaug

KINDS = ('none', 'ada', 'diffaug')


def validate_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError with the fix for any bad `config.augment` setting (before any compile)."""
  problems = []
  if cfg.kind not in KINDS:
    problems.append(f'augment.kind={cfg.kind!r} is unknown; use one of {KINDS} '
                    "(reference --aug no|ada|diff).")
  if cfg.spec not in ada.SPECS:
    problems.append(f'augment.spec={cfg.spec!r} is unknown; use one of {tuple(ada.SPECS)} '
                    "(reference default 'bgc').")
  else:
    try:
      ada_spec(cfg)
    except (ValueError, TypeError) as e:
      problems.append(f'augment.strengths: {e}')
  if not 0.0 < cfg.ada_maxp <= 1.0:
    problems.append(f'augment.ada_maxp={cfg.ada_maxp} must be in (0, 1] (reference 0.25; 1 = no cap; '
                    "the reference reads 0 as 'no cap', say 1.0 for that).")
  if not 0.0 <= cfg.ada_target <= 1.0:
    problems.append(f'augment.ada_target={cfg.ada_target} is outside [0, 1] (stylegan2-ada: 0.6).')
  if not 0.0 <= cfg.initial_p <= 1.0:
    problems.append(f'augment.initial_p={cfg.initial_p} is outside [0, 1].')
  if not isinstance(cfg.ada_interval, int) or cfg.ada_interval < 1:
    problems.append(f'augment.ada_interval={cfg.ada_interval!r} must be an integer >= 1 (stylegan2-ada: 4).')
  unit = cfg.ada_kimg * 1000
  if cfg.ada_kimg <= 0 or unit != round(unit) or unit >= 2**30:
    problems.append(f'augment.ada_kimg={cfg.ada_kimg} must be > 0 with ada_kimg * 1000 a whole number '
                    'below 2**30 (p moves in exact integer ticks); stylegan2-ada: 500.')
  try:
    diffaug.parse_policy(cfg.diffaug_policy)
  except ValueError as e:
    problems.append(f'augment.diffaug_policy: {e}')
  if problems:
    raise ValueError('Bad augment config:\n  ' + '\n  '.join(problems))


def ada_spec(cfg: ml_collections.ConfigDict) -> ada.AdaSpec:
  """The AdaSpec of `cfg.spec` with the strengths of `cfg.strengths`."""
  return ada.AdaSpec.named(cfg.spec, **dict(cfg.strengths))


def augment_images(key: jax.Array, images: jax.Array, p, cfg: ml_collections.ConfigDict) -> jax.Array:
  """Augments NHWC `images` as `cfg.kind` says; `p` (traced float) only matters for 'ada'.

  'none' returns `images` itself; 'diffaug' applies every op to every sample (the reference's
  DiffAugment has no probability).
  """
  if cfg.kind == 'none':
    return images
  if cfg.kind == 'ada':
    return ada.augment(key, images, p, ada_spec(cfg))
  if cfg.kind == 'diffaug':
    return diffaug.augment(key, images, cfg.diffaug_policy)
  raise ValueError(f'augment.kind={cfg.kind!r} is unknown; use one of {KINDS}.')
