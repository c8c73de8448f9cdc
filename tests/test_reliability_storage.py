"""Issue 14.4-5 and 10: unwritable folders and full disks give one clear error within seconds with
the older checkpoints intact; SIGINT saves like SIGTERM, a second one exits at once; a resume on
another device count says that it is not bitwise."""
import os
import pathlib
import resource
import shutil
import signal
import tempfile
import threading
import time

import jax
import pytest

import reliability_helpers as rh
from dgan_jax import checkpoint, errors, train


def unwritable_folder(tmp_path) -> pathlib.Path:
  """A folder in which this process cannot create files. As root, permissions do not apply, so
  the folder is a link to a sysfs directory, where the kernel refuses new files to everyone; the
  failure reaches orbax exactly as a permission error does (PermissionError / EPERM on mkdir)."""
  if os.geteuid() != 0:
    folder = tmp_path / 'readonly'
    folder.mkdir()
    folder.chmod(0o555)
    return folder
  target = pathlib.Path('/sys/kernel')
  try:
    fd, probe = tempfile.mkstemp(dir=target)
  except OSError:
    return target
  os.close(fd)
  os.unlink(probe)
  pytest.skip('no folder refuses writes to root here')


def test_unwritable_checkpoint_folder_fails_in_seconds(tmp_path):
  """It used to hang forever at exit (orbax's writer threads wait for a folder that never comes)."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'checkpoints').symlink_to(unwritable_folder(tmp_path), target_is_directory=True)
  start = time.time()
  proc = rh.run_cli(['--config=configs/toy25.py:smoke', f'--workdir={workdir}'], timeout=120)
  rh.assert_clean_error(proc, 4, 'Cannot write checkpoints into', 'permissions')
  assert time.time() - start < 60
  assert not (workdir / 'config.json').exists()


def _small_files_only(limit):
  """preexec_fn: files larger than `limit` bytes cannot be written (EFBIG, like a full disk)."""
  def apply():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
  return apply


@pytest.mark.slow
def test_a_full_disk_mid_run_fails_cleanly_and_keeps_older_checkpoints(tmp_path):
  workdir = tmp_path / 'run'
  config = rh.toy_config(steps=16, checkpoint_every=4)
  train.train_and_evaluate(config, str(workdir), stop_after_steps=8)
  assert rh.step_dirs(workdir) == [4, 8]
  start = time.time()
  proc = rh.run_cli(['--config=configs/toy25.py:smoke', f'--workdir={workdir}',
                     *rh.overrides(config)], timeout=300, preexec_fn=_small_files_only(20_000))
  rh.assert_clean_error(proc, 4, 'Could not write checkpoint', 'File too large',
                        'intact checkpoints: steps 4, 8')
  assert time.time() - start < 120
  assert 'Event loop is closed' not in proc.stderr.splitlines()[-1]
  ckpt = checkpoint.Checkpointer(workdir)
  like = jax.eval_shape(lambda: train.create_train_state(config, *_nets_and_tx(config)))
  state, step = ckpt.restore_latest_good(checkpoint.abstract_like(
      like, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  ckpt.close()
  assert step == 8 and int(state.step) == 8


def _nets_and_tx(config):
  from dgan_jax.networks import build_networks
  return (build_networks(config), *train.make_optimizers(config))


def test_not_enough_free_space_is_refused_before_writing(tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(tmp_path)
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(checkpoint.shutil, 'disk_usage', lambda p: usage._replace(free=4096))
  with pytest.raises(errors.StorageError, match=r'Not enough free space.*0\.0 MiB free'):
    ckpt.save(1, {'w': jax.numpy.ones((256, 256))}, rh.toy_config(), force=True)
  ckpt.close()
  assert rh.step_dirs(tmp_path) == [] and not list((tmp_path / 'checkpoints').glob('1*'))


def test_ctrl_c_saves_a_checkpoint_and_returns(tmp_path):
  """The first SIGINT is handled like SIGTERM: the loop saves at its current step and returns
  (it used to raise KeyboardInterrupt in the middle of whatever was running, a save included)."""
  workdir = tmp_path / 'run'
  config = rh.toy_config(steps=4000, checkpoint_every=4, log_every=100)

  def interrupt_after_first_checkpoint():
    deadline = time.time() + 300
    while not rh.step_dirs(workdir) and time.time() < deadline:
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)
  before = signal.getsignal(signal.SIGINT)
  threading.Thread(target=interrupt_after_first_checkpoint, daemon=True).start()
  state = train.train_and_evaluate(config, str(workdir))
  step = int(state.step)
  assert 4 <= step < 4000
  assert rh.step_dirs(workdir)[-1] == step
  assert signal.getsignal(signal.SIGINT) is before   # handlers restored


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once(tmp_path):
  workdir = tmp_path / 'run'
  config = rh.toy_config(steps=4000, checkpoint_every=4, log_every=100)
  proc = rh.launch_cli(['--config=configs/toy25.py:smoke', f'--workdir={workdir}',
                        *rh.overrides(config)])
  deadline = time.time() + 300
  while not rh.step_dirs(workdir) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  first_handled = threading.Event()
  lines = []

  def read_stdout():   # The handler prints at once; signals sent together would merge into one.
    for line in proc.stdout:
      lines.append(line)
      if line.startswith('SIGINT: finishing'):
        first_handled.set()
  reader = threading.Thread(target=read_stdout, daemon=True)
  reader.start()
  proc.send_signal(signal.SIGINT)
  assert first_handled.wait(60), ''.join(lines[-20:])
  proc.send_signal(signal.SIGINT)
  start = time.time()
  err = proc.stderr.read()
  proc.wait(timeout=60)
  assert time.time() - start < 20
  assert proc.returncode == 130, (proc.returncode, err[-3000:])
  assert 'Second interrupt' in err and 'Traceback' not in err, err[-3000:]
  assert rh.step_dirs(workdir)    # The complete checkpoints are still there.


def test_resuming_on_another_device_count_says_it_is_not_bitwise(tmp_path, monkeypatch, capsys):
  state = {'w': jax.numpy.ones(3)}
  ckpt = checkpoint.Checkpointer(tmp_path)
  monkeypatch.setattr(checkpoint.jax, 'device_count', lambda: 1)   # Saved by a 1-device run.
  ckpt.save(1, state, rh.toy_config(), force=True)
  ckpt.wait()
  monkeypatch.undo()
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  ckpt.restore_latest_good({'w': jax.ShapeDtypeStruct((3,), jax.numpy.float32, sharding=one)})
  ckpt.close()
  out = capsys.readouterr().out
  assert 'written on 1 device(s), this run has 8' in out and 'not bitwise' in out
