"""Issue 14.7: run files are written atomically or read tolerantly, so a kill never blocks resume."""
import json
import os

import pytest

import reliability_helpers as rh
from dgan_jax import evaluation, run_files, train


def test_atomic_write_keeps_the_old_content_when_killed_mid_write(tmp_path, monkeypatch):
  path = tmp_path / 'diffusion_history.json'
  run_files.write_json(path, [{'step': 1}])
  real_fsync = os.fsync

  def killed(fd):   # The process dies after part of the new content is written.
    raise KeyboardInterrupt
  monkeypatch.setattr(os, 'fsync', killed)
  with pytest.raises(KeyboardInterrupt):
    run_files.write_json(path, [{'step': 1}, {'step': 2}] * 1000)
  monkeypatch.setattr(os, 'fsync', real_fsync)
  assert json.loads(path.read_text()) == [{'step': 1}]
  assert [p.name for p in tmp_path.iterdir()] == ['diffusion_history.json']   # no temp left


def test_a_damaged_json_file_is_moved_aside_not_fatal(tmp_path):
  path = tmp_path / 'best.json'
  path.write_text('{"metric": "fid50k_full", "val')
  assert run_files.read_json(path, default={}) == {}
  assert not path.exists() and (tmp_path / 'best.json.damaged').exists()


def test_metrics_jsonl_survives_a_cut_last_line(tmp_path):
  path = tmp_path / 'metrics.jsonl'

  class Writer:
    def write_scalars(self, step, scalars):
      pass
  evaluation.write_results(tmp_path, 10, 0.64, {'fid50k_full': 12.5}, Writer())
  with open(path, 'a') as f:                         # A kill in the middle of the next append.
    f.write('{"step": 20, "kimg": 1.28, "res')
  evaluation.write_results(tmp_path, 30, 1.92, {'fid50k_full': 11.0}, Writer())
  records = run_files.read_jsonl(path)
  assert [r['step'] for r in records] == [10, 30]
  assert path.read_text().splitlines()[2].startswith('{"step": 30')


def test_resume_after_a_kill_during_the_history_write(tmp_path):
  """A half-written diffusion_history.json used to block every resume (JSONDecodeError)."""
  config = rh.toy_config(steps=8, checkpoint_every=4)
  train.train_and_evaluate(config, str(tmp_path), stop_after_steps=4)
  history = tmp_path / 'diffusion_history.json'
  history.write_text(history.read_text()[:25])       # What a kill mid-write left behind.
  state = train.train_and_evaluate(rh.toy_config(steps=8, checkpoint_every=4), str(tmp_path))
  assert int(state.step) == 8
  rows = json.loads(history.read_text())
  assert rows and rows[-1]['step'] == 8
  assert (tmp_path / 'diffusion_history.json.damaged').exists()
