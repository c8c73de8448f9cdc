"""Resuming a run with a config that differs from the saved one: allow what is safe, refuse the rest.

A checkpoint is only meaningful under the config it was trained with: the batch size defines what
a step is (the step count would be silently reinterpreted), the networks define the shapes, the
optimizer and diffusion settings define the state's meaning. `check(saved, given)` compares the
two before anything in the workdir is written. Fields in `SAFE` (run length, logging, checkpoint
and evaluation cadence, where the data lives) may change, with a note; any other change is refused
with a message naming each field, how to continue the run unchanged, and how to start a new run
from its weights instead (an exported pickle as `--config.train.resume_from`, the transfer path).
"""
from __future__ import annotations

import json

from dgan_jax import errors

# Field (or prefix ending in '.') -> why changing it on resume is safe.
SAFE = {
    'train.total_kimg': 'the run is longer or shorter',
    'train.total_steps': 'the run is longer or shorter',
    'train.verbose_logs': 'logging only',
    'train.resume_from': 'only read when a run starts (the checkpoint is used on resume)',
    'train.log_every_steps': 'logging only',
    'train.checkpoint_every_kimg': 'checkpoint cadence only',
    'train.keep_checkpoints': 'how many checkpoints are kept',
    'train.sample_every_kimg': 'sample-grid cadence only',
    'train.distributed': 'how processes start, not what they compute',
    'train.subs_per_pass': 'memory/speed trade-off with the same result',
    'data.prefetch': 'input prefetch depth only',
    'model.mixed_precision': 'compute dtype only (parameters and optimizer state stay float32; '
                             "'auto' already differs by platform)",
    'data.path': 'where the dataset lives (it must hold the same images)',
    'data.shuffle_buffer': 'tfds shuffle buffer: the data order changes from here on',
    'eval.': 'evaluation settings only',
}

_MISSING = object()


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}; values normalised through JSON (tuples -> lists)."""
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict) and value:
      out.update(flatten(value, name + '.'))
    else:
      out[name] = json.loads(json.dumps(value))
  return out


def safe_reason(field: str) -> str | None:
  for name, reason in SAFE.items():
    if field == name or (name.endswith('.') and field.startswith(name)):
      return reason
  return None


def differences(saved: dict, given: dict) -> tuple[list[str], list[str]]:
  """(notes on allowed changes, refused changes), one line per differing field."""
  a, b = flatten(saved), flatten(given)
  from dgan_jax.families.base import data_source  # pylint: disable=import-outside-toplevel
  for flat in (a, b):   # 'auto' and the source it resolves to are the same data
    if 'data.source' in flat:
      flat['data.source'] = data_source(flat['data.source'], flat.get('data.path', ''))
  notes, refused = [], []
  for field in sorted(set(a) | set(b)):
    old, new = a.get(field, _MISSING), b.get(field, _MISSING)
    if old == new:
      continue
    reason = safe_reason(field)
    if old is _MISSING:
      notes.append(f'{field}={new!r} is not in the saved config (a field added since the run '
                   'started); using the given value.')
    elif new is _MISSING:
      notes.append(f'{field}={old!r} of the saved config is no longer a config field; ignored.')
    elif reason:
      notes.append(f'{field}: {old!r} -> {new!r} ({reason}).')
    else:
      refused.append(f'{field}: {old!r} (saved) -> {new!r} (given)')
  return notes, refused


def check(saved: dict, given: dict, workdir: str, step: int | None) -> list[str]:
  """Returns the notes on allowed changes; raises ResumeConfigError listing refused ones."""
  notes, refused = differences(saved, given)
  if refused:
    at = f' (checkpoint at step {step})' if step is not None else ''
    raise errors.ResumeConfigError(
        f'Cannot resume {workdir}{at} with a changed config. These fields differ from the run\'s '
        'saved config and change the networks, the optimizer, the diffusion or what a training '
        'step means:\n  ' + '\n  '.join(refused) + '\n'
        f'To continue the run as it was, drop these overrides (python -m dgan_jax.main '
        f'--workdir={workdir} uses the saved config). To train with the new settings, start a new '
        'run in another --workdir; to start it from this run\'s weights (StyleGAN2 image runs), '
        'export them as a network pickle (docs/interop.md) and pass '
        '--config.train.resume_from=<pickle> (the transfer path: fresh optimizer and progress).')
  return notes
