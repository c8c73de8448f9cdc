"""Shared by the reliability tests: tiny toy configs, the command line in a subprocess, damage."""
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

from configs import toy25

REPO = pathlib.Path(__file__).resolve().parents[1]


def toy_config(steps: int = 12, checkpoint_every: int = 4, log_every: int = 4, **overrides):
  """configs/toy25.py:smoke with `steps` steps of batch 64 and checkpoints every few steps."""
  config = toy25.get_config('smoke')
  config.train.total_kimg = 64 * steps / 1000
  config.train.checkpoint_every_kimg = 64 * checkpoint_every / 1000
  config.train.log_every_steps = log_every
  for key, value in overrides.items():
    section, field = key.split('.')
    config[section][field] = value
  return config


def overrides(config) -> list[str]:
  """--config.x.y=v flags that turn configs/toy25.py:smoke into `config` (train section only)."""
  base = toy25.get_config('smoke')
  return [f'--config.train.{k}={v}' for k, v in config.train.items() if base.train[k] != v]


def cli_env(devices: int = 8) -> dict:
  return dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES=str(devices),
              PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='3')


def run_cli(args, timeout: float = 120, module: str = 'dgan_jax.main', cwd=REPO, **kwargs):
  """Runs `python -m <module> args` to the end; returns CompletedProcess (stdout, stderr apart)."""
  return subprocess.run([sys.executable, '-m', module, *map(str, args)], cwd=cwd, env=cli_env(),
                        capture_output=True, text=True, timeout=timeout, **kwargs)


def launch_cli(args, module: str = 'dgan_jax.main', **kwargs) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, '-m', module, *map(str, args)], cwd=REPO,
                          env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kwargs)


def assert_clean_error(proc, code: int, *words):
  """Exit `code`, no traceback, and an `error:` line on stderr holding every word."""
  assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
  assert errors, proc.stderr[-3000:]
  text = proc.stderr[proc.stderr.index(errors[0]):]
  for word in words:
    assert word in text, (word, text)


def step_dirs(workdir) -> list[int]:
  folder = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in folder.glob('*') if p.name.isdigit()) if folder.is_dir() else []


def largest_data_file(step_dir) -> pathlib.Path:
  files = [p for p in (pathlib.Path(step_dir) / 'state').rglob('*')
           if p.is_file() and '/d/' in str(p)]
  return max(files, key=lambda p: p.stat().st_size)


def damage(step_dir, kind: str) -> None:
  """Damages a checkpoint step folder the way a disk or a kill would."""
  step_dir = pathlib.Path(step_dir)
  if kind == 'flip':
    path = largest_data_file(step_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
  elif kind == 'truncate':
    path = largest_data_file(step_dir)
    path.write_bytes(path.read_bytes()[:100])
  elif kind == 'garbage':
    path = largest_data_file(step_dir)
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
  elif kind == 'no_metadata':
    (step_dir / 'state' / '_METADATA').unlink()
  elif kind == 'empty':
    import shutil
    shutil.rmtree(step_dir)
    step_dir.mkdir()
  else:
    raise ValueError(kind)


def same_tree(a, b) -> bool:
  def raw(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    return np.asarray(x)
  return all(np.array_equal(raw(x), raw(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
