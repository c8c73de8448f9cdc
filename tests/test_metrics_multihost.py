"""Multi-host extraction: two CPU processes with gloo collectives, each feeding its own images."""
import os
import socket
import subprocess
import sys

import numpy as np


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _sorted_rows(a):
  return a[np.lexsort(a.T[::-1])]


def test_two_processes_get_all_features(tmp_path):
  worker = os.path.join(os.path.dirname(__file__), 'metrics_multiprocess_worker.py')
  port = str(_free_port())
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  procs = [subprocess.Popen([sys.executable, worker, str(i), port, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
  outs = [p.communicate(timeout=300)[0].decode()[-2000:] for p in procs]
  assert all(p.returncode == 0 for p in procs), outs
  results = [np.load(tmp_path / f'p{i}.npz') for i in range(2)]
  direct = results[0]['direct']
  for r in results:
    assert r['feats'].shape == (37, 5)
    # Same set of feature rows as the direct computation (order follows the process shards).
    np.testing.assert_allclose(_sorted_rows(r['feats']), _sorted_rows(direct), atol=1e-5)
    assert r['limited'].shape == (21, 5)  # Global count 21: 11 from process 0, 10 from 1.
  np.testing.assert_array_equal(results[0]['feats'], results[1]['feats'])
