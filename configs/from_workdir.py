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
    return ml_collections.ConfigDict({MISSING: str(path)})
  return ml_collections.ConfigDict(saved)
