"""gs:// workdirs through dgan_jax/paths.py, on a fake bucket (tests/fake_gcs.py: gs://<bucket>/...
lands in a temporary folder while dgan_jax, orbax and the event writer keep their gs:// code
paths): the run files, the lock, the writable check, the stats cache, and a toy run that trains,
stops and resumes there (that a resumed run equals an uninterrupted one is tested locally in
test_reliability_checkpoints.py; the same code runs here)."""
import json

import pytest

import reliability_helpers as rh
from dgan_jax import checkpoint, paths, run_files, train, workdir_lock
from dgan_jax.metrics import stats_cache
from fake_gcs import fake_gcs


@pytest.fixture
def bucket(tmp_path):
  root = tmp_path / 'bucket-root'
  root.mkdir()
  with fake_gcs(root):
    yield root


def test_paths_tell_buckets_from_local_folders():
  assert paths.is_remote('gs://b/run') and paths.is_remote(paths.path('s3://b/x'))
  assert not paths.is_remote('/tmp/run') and not paths.is_remote('runs/x')
  assert str(paths.path('gs://b/run') / 'config.json') == 'gs://b/run/config.json'
  assert '~' not in str(paths.path('~/runs'))


def test_run_files_in_a_bucket(bucket):
  run = paths.path('gs://b/run')
  run.mkdir(parents=True)
  run_files.write_json(run / 'config.json', {'a': 1})
  run_files.write_json(run / 'config.json', {'a': 2})
  assert run_files.read_json(run / 'config.json') == {'a': 2}
  assert run_files.read_json(run / 'missing.json', default=[]) == []
  for step in range(3):
    run_files.append_jsonl(run / 'metrics.jsonl', {'step': step})
  assert [r['step'] for r in run_files.read_jsonl(run / 'metrics.jsonl')] == [0, 1, 2]
  (run / 'history.json').write_text('{cut')
  assert run_files.read_json(run / 'history.json', default=[]) == []
  # What landed in the bucket: whole objects, no temporary files, the damaged one moved aside.
  assert sorted(p.name for p in (bucket / 'b' / 'run').iterdir()) == [
      'config.json', 'history.json.damaged', 'metrics.jsonl']
  assert json.loads((bucket / 'b' / 'run' / 'config.json').read_text()) == {'a': 2}


def test_lock_and_writable_check_in_a_bucket(bucket):
  with workdir_lock.WorkdirLock('gs://b/run') as lock:   # No flock on a bucket: a no-op.
    assert lock.remote
  checkpoint.check_writable('gs://b/run/checkpoints', needed_bytes=1 << 40)   # No free-space figure.
  assert list((bucket / 'b' / 'run' / 'checkpoints').iterdir()) == []        # The probe is gone.


def test_stats_cache_in_a_bucket(bucket):
  path = stats_cache.stats_path('gs://b/cache', 'cifar10-32px-all-inception')
  stats_cache.save_stats(path, [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 7)
  mu, sigma = stats_cache.load_stats(path)
  assert mu.tolist() == [1.0, 2.0] and sigma.shape == (2, 2)
  assert (bucket / 'b' / 'cache' / 'cifar10-32px-all-inception-stats.npz').is_file()


def test_toy_run_in_a_bucket_resumes(bucket, capsys):
  run = 'gs://b/runs/toy'
  train.train_and_evaluate(rh.toy_config(steps=8, checkpoint_every=4), run, stop_after_steps=4)
  local = bucket / 'b' / 'runs' / 'toy'
  assert sorted(p.name for p in (local / 'checkpoints').iterdir()) == ['4']
  assert (local / 'checkpoints' / '4' / 'commit_success.txt').exists()   # orbax's GCS commit
  capsys.readouterr()
  resumed = train.train_and_evaluate(rh.toy_config(steps=8, checkpoint_every=4), run)
  assert f'Resumed from {run}/checkpoints at step 4' in capsys.readouterr().out
  assert int(resumed.step) == 8
  assert sorted(p.name for p in (local / 'checkpoints').iterdir()) == ['4', '8']
  names = {p.name for p in local.iterdir()}
  assert {'config.json', 'results.json', 'toy25.png', 'samples.npy'} <= names
  assert any(n.startswith('events.out.tfevents') for n in names)
  assert json.loads((local / 'results.json').read_text())['final_T'] >= 0
