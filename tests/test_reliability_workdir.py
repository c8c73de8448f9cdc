"""Issue 14.8-9 and 12: one writer per workdir; a changed config on resume is checked before anything
is written; a failed start leaves no half-made workdir; readers create nothing."""
import json
import subprocess
import sys

import pytest

import reliability_helpers as rh
from dgan_jax import errors, generate, run_dir, train, workdir_lock


def test_a_second_writer_is_refused(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  with workdir_lock.WorkdirLock(workdir):            # Another live process holds it.
    with pytest.raises(errors.WorkdirLockedError, match=r'is in use.*another --workdir'):
      train.train_and_evaluate(rh.toy_config(steps=2), str(workdir))
  assert sorted(p.name for p in workdir.iterdir()) == []   # Nothing written.


def test_the_command_line_refuses_a_locked_workdir(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  with workdir_lock.WorkdirLock(workdir):
    proc = rh.run_cli(['--config=configs/toy25.py:smoke', f'--workdir={workdir}'], timeout=120)
  rh.assert_clean_error(proc, 2, 'is in use', 'process')
  assert not (workdir / 'config.json').exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_reported(tmp_path, capsys):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  (workdir / workdir_lock.LOCK_NAME).write_text(json.dumps(
      {'pid': int(dead.stdout), 'host': 'localhost', 'started': 0}))   # What kill -9 leaves.
  state = train.train_and_evaluate(rh.toy_config(steps=2), str(workdir))
  assert int(state.step) == 2
  assert f'stale lock' in capsys.readouterr().out
  assert not (workdir / workdir_lock.LOCK_NAME).exists()   # Released at the end.


def test_resume_with_a_changed_config(tmp_path, capsys):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(rh.toy_config(steps=8), str(workdir), stop_after_steps=4)
  saved = (workdir / 'config.json').read_bytes()
  changed = rh.toy_config(steps=8)
  changed.train.batch_size, changed.train.batch_gpu = 32, 4
  changed.optim.d_lr = 2e-3
  with pytest.raises(errors.ResumeConfigError) as info:
    train.train_and_evaluate(changed, str(workdir))
  message = str(info.value)
  assert 'train.batch_size: 64 (saved) -> 32 (given)' in message
  assert 'train.batch_gpu: 8 (saved) -> 4 (given)' in message
  assert 'optim.d_lr: 0.001 (saved) -> 0.002 (given)' in message
  assert '--config.train.resume_from=<pickle>' in message
  assert (workdir / 'config.json').read_bytes() == saved   # Nothing overwritten.
  # Safe changes go through, with a note; config.json then records them.
  longer = rh.toy_config(steps=10, log_every=2)
  state = train.train_and_evaluate(longer, str(workdir))
  assert int(state.step) == 10
  out = capsys.readouterr().out
  assert 'train.total_kimg: 0.512 -> 0.64' in out and 'train.log_every_steps: 4 -> 2' in out
  assert json.loads((workdir / 'config.json').read_text())['train']['total_kimg'] == 0.64


def test_a_failed_start_leaves_no_half_made_workdir(tmp_path):
  config = rh.toy_config(steps=2)
  config.eval.metrics = 'fid_bogus'     # Fails when the evaluator is built, after setup began.
  with pytest.raises(errors.UserError, match='unknown metric'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_readers_create_nothing_in_a_missing_workdir(tmp_path):
  missing = tmp_path / 'nothing'
  with pytest.raises(errors.MissingInputError, match='has no checkpoint'):
    run_dir.load_config(missing)
  with pytest.raises(errors.MissingInputError, match='has no checkpoint'):
    generate.run(missing, '0')
  assert not missing.exists()


@pytest.mark.parametrize('module,args', [
    ('dgan_jax.main', ['--mode=generate', '--config=configs/cifar10.py:smoke']),
    ('dgan_jax.export', ['--out={tmp}/x.npz', '--format=npz']),
])
def test_generate_and_export_on_a_missing_workdir(tmp_path, module, args):
  missing = tmp_path / 'nothing'
  proc = rh.run_cli([f'--workdir={missing}', *[a.format(tmp=tmp_path) for a in args]],
                    module=module, timeout=120)
  rh.assert_clean_error(proc, 2, 'has no checkpoint')
  assert not missing.exists() and not (tmp_path / 'x.npz').exists()


def test_a_refused_transfer_start_is_a_clean_error_and_leaves_no_workdir(tmp_path):
  """train.resume_from on a family without a pickle format (the toy): a UserError (exit 2 on the
  command line), raised inside the opened workdir, which the failed start removes again."""
  pickle = tmp_path / 'network.pkl'
  pickle.write_bytes(b'not read')
  config = rh.toy_config(steps=2)
  config.train.resume_from = str(pickle)
  with pytest.raises(errors.UserError, match="'toy' family cannot start from a pickle"):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()
