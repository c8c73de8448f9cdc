"""The default `--config`: the resolved config saved in the run's `<workdir>/config.json`.

So `python -m dgan_jax.main --mode=eval --workdir=runs/x --config.eval.metrics=fid50k_full` (or
`--mode=generate`, or resuming training) works without naming the experiment config again;
`--config.x.y=...` overrides apply on top of it. With `--pkl=network.pkl` and a workdir without a
saved config, the config of the pickle's networks (dgan_jax.import_torch) is the default.
"""
import json
import pathlib
import sys

import ml_collections


def _flag_from_argv(argv, name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _workdir_from_argv(argv) -> str | None:
  return _flag_from_argv(argv, 'workdir')


def _pickle_config(pkl: str):
  """The config of a network pickle (`--pkl`, imported into a new workdir by --mode=eval/generate),
  or None when it cannot be read (main() then reports the pickle's problem)."""
  from dgan_jax import import_torch  # pylint: disable=import-outside-toplevel
  try:
    return import_torch.config_for(import_torch.read_pickle(pkl))
  except Exception:  # pylint: disable=broad-except  (a config default must not raise)
    return None


MISSING = 'missing_run_config'


def _read(path: pathlib.Path):
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def get_config(arg=None):
  """The saved config, or a one-field placeholder naming the missing file (absl parses this default
  when the flag is defined, also when --config is given, so it must not raise; main() reports it).

  A missing or damaged config.json falls back to the config saved inside the newest checkpoint.
  """
  workdir = arg or _workdir_from_argv(sys.argv)
  path = pathlib.Path(workdir or '.') / 'config.json'
  saved = _read(path) if workdir else None
  if workdir and not isinstance(saved, dict):
    steps = sorted((p for p in (path.parent / 'checkpoints').glob('*') if p.name.isdigit()),
                   key=lambda p: int(p.name), reverse=True)
    saved = next((c for c in (_read(s / 'config' / 'metadata') for s in steps)
                  if isinstance(c, dict)), None)
  if not isinstance(saved, dict):
    pkl = _flag_from_argv(sys.argv, 'pkl') if arg is None else None
    derived = _pickle_config(pkl) if pkl else None
    return derived or ml_collections.ConfigDict({MISSING: str(path)})
  return ml_collections.ConfigDict(saved)
