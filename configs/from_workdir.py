"""The default `--config`: the resolved config saved in the run's `<workdir>/config.json`.

So `python -m dgan_jax.main --mode=eval --workdir=runs/x --config.eval.metrics=fid50k_full` (or
`--mode=generate`, or resuming training) works without naming the experiment config again;
`--config.x.y=...` overrides apply on top of it.
"""
import json
import pathlib
import sys

import ml_collections


def _workdir_from_argv(argv) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--workdir='):
      return arg.split('=', 1)[1]
    if arg == '--workdir' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def get_config(arg=None):
  workdir = arg or _workdir_from_argv(sys.argv)
  path = pathlib.Path(workdir or '.') / 'config.json'
  if not workdir or not path.exists():
    raise ValueError(f'No --config given and no saved run config at {path}: pass '
                     '--config=configs/<experiment>.py (e.g. configs/cifar10.py).')
  return ml_collections.ConfigDict(json.loads(path.read_text()))
