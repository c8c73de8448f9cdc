"""Whole-program checks through the command line: kill and restart, SIGTERM, two processes."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import toy25
from dgan_jax import checkpoint, steps, train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 24
OVERRIDES = {'train.total_kimg': 64 * STEPS / 1000, 'train.checkpoint_every_kimg': 64 * 4 / 1000,
             'train.log_every_steps': 4}


def smoke_config():
  config = toy25.get_config('smoke')
  for k, v in OVERRIDES.items():
    section, field = k.split('.')
    config[section][field] = v
  return config


def launch(workdir, devices=8, extra=()):
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES=str(devices),
             PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='3')
  cmd = [sys.executable, '-m', 'dgan_jax.main', '--config=configs/toy25.py:smoke',
         f'--workdir={workdir}', *[f'--config.{k}={v}' for k, v in OVERRIDES.items()], *extra]
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def final_params(workdir, reference_state):
  replicated = jax.sharding.NamedSharding(steps.make_mesh(), jax.sharding.PartitionSpec())
  ckpt = checkpoint.Checkpointer(workdir)
  state = ckpt.restore(checkpoint.abstract_like(reference_state, replicated))
  ckpt.close()
  return state


def wait_for_checkpoint(workdir, proc, timeout=300):
  start = time.time()
  while time.time() - start < timeout:
    done = [p for p in (workdir / 'checkpoints').glob('[0-9]*') if p.name.isdigit()]
    if done or proc.poll() is not None:
      return sorted(int(p.name) for p in done)
    time.sleep(0.2)
  raise TimeoutError('no checkpoint appeared')


def assert_same_params(a, b, **tol):
  for x, y in zip(jax.tree.leaves((a.g_params, a.d_params, a.g_ema_params)),
                  jax.tree.leaves((b.g_params, b.d_params, b.g_ema_params))):
    if tol:
      np.testing.assert_allclose(x, y, **tol)
    else:
      np.testing.assert_array_equal(x, y)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  return train.train_and_evaluate(smoke_config(), str(tmp_path_factory.mktemp('full')))


def test_kill_sigterm_and_restart_match_uninterrupted_run(tmp_path, uninterrupted):
  workdir = tmp_path / 'run'
  # 1. SIGKILL at an arbitrary point after the first checkpoint: nothing is saved on the way out.
  proc = launch(workdir)
  assert wait_for_checkpoint(workdir, proc), proc.communicate()[0]
  proc.kill()
  proc.wait()
  # 2. Restart, then SIGTERM (preemption): the loop saves a checkpoint at its current step and exits.
  proc = launch(workdir)
  before = wait_for_checkpoint(workdir, proc)
  while proc.poll() is None and wait_for_checkpoint(workdir, proc)[-1] == before[-1]:
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out
  # 3. The same command again runs to the end.
  proc = launch(workdir)
  out = proc.communicate(timeout=600)[0]
  assert proc.returncode == 0, out
  assert 'modes covered' in out
  resumed = final_params(workdir, uninterrupted)
  assert int(resumed.step) == STEPS
  assert_same_params(resumed, uninterrupted)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path, uninterrupted):
  workdir = tmp_path / 'multi'
  address = f'127.0.0.1:{_free_port()}'
  procs = [launch(workdir, devices=4, extra=('--config.train.distributed=True',
                                             f'--coordinator_address={address}',
                                             '--num_processes=2', f'--process_id={i}'))
           for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out
  assert 'modes covered' in outs[0] and 'modes covered' not in outs[1]   # only host 0 reports
  multi = final_params(workdir, uninterrupted)
  assert int(multi.step) == STEPS
  assert_same_params(multi, uninterrupted, atol=1e-5, rtol=1e-5)
