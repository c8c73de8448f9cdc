"""DiffAugment (Zhao et al. 2020) as pure, differentiable JAX functions.

Reproduces the reference's `training/diffaug.py` (Diffusion-GAN's `--aug diff`, policy
`color,translation,cutout`): per sample, a random brightness offset, saturation and contrast factor,
an integer translation by up to 1/8 of the image size (zeros shifted in) and a zeroed square of 1/5
of the size. Every op is always applied (there is no probability p). As for ADA, the random draws
are separate from the transform:

    draws = draw(key, images.shape, policy);  out = apply(images, draws, policy)

Images are NHWC float in [-1, 1]. See docs/augment.md.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

POLICY_OPS = {'color': ('brightness', 'saturation', 'contrast'), 'translation': ('translation',),
              'cutout': ('cutout',)}
DEFAULT_POLICY = 'color,translation,cutout'
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.2


@flax.struct.dataclass
class DiffAugDraws:
  """The random values of one `apply`, keyed by op (present only for the policy's ops).

  brightness, saturation, contrast: float32 [N] uniform draws in [0, 1) (offset u - 0.5, factors
  2u and u + 0.5); translation: int32 [N, 2] (rows, columns) shifts; cutout: int32 [N, 2] (row,
  column) offsets of the square.
  """
  values: dict


def parse_policy(policy: str) -> tuple[str, ...]:
  """The policy's groups in order; raises ValueError for an unknown, repeated or empty one."""
  groups = tuple(g.strip() for g in policy.split(',')) if policy else ()
  unknown = [g for g in groups if g not in POLICY_OPS]
  if not groups or unknown or len(set(groups)) != len(groups):
    raise ValueError(f'DiffAugment policy {policy!r} must be a comma list of distinct groups from '
                     f'{tuple(POLICY_OPS)} (unknown: {unknown}); the reference uses {DEFAULT_POLICY!r}.')
  return groups


def _sizes(height: int, width: int):
  """(shift_h, shift_w) and (cutout_h, cutout_w) in pixels, rounded as the reference."""
  shift = (int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5))
  cut = (int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5))
  return shift, cut


def _layout(shape: Sequence[int], policy: str):
  """(op, kind, low, high) per random draw in the reference's call order; ints are in [low, high)."""
  _, height, width, _ = shape
  (sh, sw), (ch, cw) = _sizes(height, width)
  layout = []
  for group in parse_policy(policy):
    for op in POLICY_OPS[group]:
      if op == 'translation':
        layout += [(op, 'int', -sh, sh + 1), (op, 'int', -sw, sw + 1)]
      elif op == 'cutout':
        layout += [(op, 'int', 0, height + (1 - ch % 2)), (op, 'int', 0, width + (1 - cw % 2))]
      else:
        layout.append((op, 'uniform', 0, 1))
  return layout


def _collect(parts: list) -> dict:
  values = {}
  for op, value in parts:
    values.setdefault(op, []).append(value)
  return {op: v[0] if len(v) == 1 else jnp.stack(v, axis=1) for op, v in values.items()}


def draw(key: jax.Array, shape: Sequence[int], policy: str = DEFAULT_POLICY) -> DiffAugDraws:
  """All random values for augmenting a batch of NHWC `shape` with `policy`."""
  check_shape(shape)
  layout = _layout(shape, policy)
  keys = jax.random.split(key, len(layout))
  n = shape[0]
  parts = []
  for k, (op, kind, low, high) in zip(keys, layout):
    if kind == 'int':
      parts.append((op, jax.random.randint(k, (n,), low, high, jnp.int32)))
    else:
      parts.append((op, jax.random.uniform(k, (n,), jnp.float32)))
  return DiffAugDraws(values=_collect(parts))


def draws_from_sequence(draws: Sequence[Any], shape: Sequence[int],
                        policy: str = DEFAULT_POLICY) -> DiffAugDraws:
  """Maps the reference's random tensors (its call order) onto DiffAugDraws (for parity checks)."""
  layout = _layout(shape, policy)
  if len(draws) != len(layout):
    raise ValueError(f'Expected {len(layout)} reference draws for policy {policy!r}, got {len(draws)}.')
  n = shape[0]
  parts = []
  for value, (op, kind, _, _) in zip(draws, layout):
    value = np.asarray(value).reshape(n)
    parts.append((op, jnp.asarray(value, jnp.int32 if kind == 'int' else jnp.float32)))
  return DiffAugDraws(values=_collect(parts))


def check_shape(shape: Sequence[int]) -> None:
  if len(shape) != 4:
    raise ValueError(f'DiffAugment expects NHWC images of rank 4, got shape {tuple(shape)}.')


def _translate(x: jax.Array, shift: jax.Array) -> jax.Array:
  """out[i, j] = x[i + shift_rows, j + shift_cols], zero where that falls outside the image."""
  n, height, width, _ = x.shape
  rows = jnp.arange(height)[None, :] + shift[:, 0, None]     # [N, H]
  cols = jnp.arange(width)[None, :] + shift[:, 1, None]      # [N, W]
  row_ok = (rows >= 0) & (rows < height)
  col_ok = (cols >= 0) & (cols < width)
  x = jnp.take_along_axis(x, jnp.clip(rows, 0, height - 1)[:, :, None, None], axis=1)
  x = jnp.take_along_axis(x, jnp.clip(cols, 0, width - 1)[:, None, :, None], axis=2)
  keep = row_ok[:, :, None] & col_ok[:, None, :]
  return x * keep[..., None].astype(x.dtype)


def _cutout(x: jax.Array, offset: jax.Array) -> jax.Array:
  """Zeroes the (clamped) square of cutout size whose centre is at `offset` (row, column)."""
  _, height, width, _ = x.shape
  _, (ch, cw) = _sizes(height, width)
  # The reference zeroes clamp(offset - size // 2 + a) for a in [0, size): a clamped interval.
  r0 = jnp.clip(offset[:, 0] - ch // 2, 0, height - 1)
  r1 = jnp.clip(offset[:, 0] - ch // 2 + ch - 1, 0, height - 1)
  c0 = jnp.clip(offset[:, 1] - cw // 2, 0, width - 1)
  c1 = jnp.clip(offset[:, 1] - cw // 2 + cw - 1, 0, width - 1)
  rows = jnp.arange(height)[None, :]
  cols = jnp.arange(width)[None, :]
  in_rows = (rows >= r0[:, None]) & (rows <= r1[:, None])
  in_cols = (cols >= c0[:, None]) & (cols <= c1[:, None])
  cut = in_rows[:, :, None] & in_cols[:, None, :]
  if ch == 0 or cw == 0:
    cut = jnp.zeros_like(cut)
  return x * (~cut)[..., None].astype(x.dtype)


def apply(images: jax.Array, draws: DiffAugDraws, policy: str = DEFAULT_POLICY) -> jax.Array:
  """Augments NHWC `images` with the given draws, ops in the policy's order (differentiable)."""
  check_shape(images.shape)
  dtype = images.dtype
  x = images.astype(jnp.float32)
  v = draws.values
  for group in parse_policy(policy):
    for op in POLICY_OPS[group]:
      if op == 'brightness':
        x = x + (v[op] - 0.5)[:, None, None, None]
      elif op == 'saturation':
        mean = jnp.mean(x, axis=3, keepdims=True)
        x = (x - mean) * (v[op] * 2)[:, None, None, None] + mean
      elif op == 'contrast':
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * (v[op] + 0.5)[:, None, None, None] + mean
      elif op == 'translation':
        x = _translate(x, v[op])
      elif op == 'cutout':
        x = _cutout(x, v[op])
  return x.astype(dtype)


def augment(key: jax.Array, images: jax.Array, policy: str = DEFAULT_POLICY) -> jax.Array:
  """`apply(images, draw(key, images.shape, policy), policy)`."""
  return apply(images, draw(key, images.shape, policy), policy)
