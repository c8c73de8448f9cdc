"""The metric writer without TensorFlow (dgan_jax/writers.py): TensorBoard reads what it writes,
and a whole toy run trains with TensorFlow made unimportable."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

import data_helpers
from dgan_jax import writers

REPO = pathlib.Path(__file__).resolve().parents[1]


def read_events(logdir):
  acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={'scalars': 0, 'images': 0})
  acc.Reload()
  return acc


def test_event_writer_scalars_and_images_read_back(tmp_path, caplog):
  writer = writers.EventWriter(str(tmp_path), verbose=True)
  with caplog.at_level('INFO'):
    writer.write_scalars(3, {'loss/G': 0.5, 'diffusion/T': 12})
    writer.write_scalars(9, {'loss/G': 0.25})
  grid = np.zeros((1, 4, 6, 3), np.float32)
  grid[0, 1, 2] = [1.0, 0.5, 0.0]
  writer.write_images(9, {'samples/G_ema': grid})
  writer.close()
  assert 'loss/G=0.5' in caplog.text
  acc = read_events(tmp_path)
  assert [(e.step, e.value) for e in acc.Scalars('loss/G')] == [(3, 0.5), (9, 0.25)]
  assert [e.value for e in acc.Scalars('diffusion/T')] == [12.0]
  (image,) = acc.Images('samples/G_ema')
  assert (image.step, image.width, image.height) == (9, 6, 4)
  from PIL import Image  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
  assert pixels.shape == (4, 6, 3) and pixels[1, 2].tolist() == [255, 128, 0]
  assert pixels.sum() == 255 + 128


def test_non_main_writer_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(writers, 'tensorflow_available', lambda: False)
  writer = writers.make_writer(tmp_path, is_main=False, verbose=False)
  writer.write_scalars(1, {'a': 1.0})
  writer.write_images(1, {'b': np.zeros((1, 2, 2, 3))})
  writer.flush()
  assert not list(tmp_path.iterdir())


def test_cli_trains_from_a_zip_without_tensorflow(tmp_path):
  """`python -m dgan_jax.main` (DCGAN smoke config, a zip dataset) in a child where `import
  tensorflow` fails, as on JAX images without it: it trains, saves a checkpoint, and TensorBoard
  reads its scalars and sample grid."""
  data = data_helpers.write_dataset(tmp_path / 'rand8.zip', data_helpers.random_images(64, 8))
  workdir = tmp_path / 'run'
  script = textwrap.dedent('''
      import importlib.abc, importlib.util, runpy, sys
      class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
          if name.split('.')[0] == 'tensorflow':
            raise ModuleNotFoundError(f'No module named {name!r}')
      sys.meta_path.insert(0, NoTensorFlow())
      find_spec = importlib.util.find_spec
      importlib.util.find_spec = lambda name, *a: (None if name.split('.')[0] == 'tensorflow'
                                                   else find_spec(name, *a))
      try:
        runpy.run_module('dgan_jax.main', run_name='__main__', alter_sys=True)
      finally:
        assert 'tensorflow' not in sys.modules
  ''')
  cmd = [sys.executable, '-c', script, '--config=configs/cifar10_dcgan.py:smoke',
         f'--workdir={workdir}', f'--config.data.path={data}', '--config.data.resolution=8',
         '--config.train.batch_gpu=16', '--config.train.log_every_steps=1']
  env = dict(os.environ, PYTHONPATH=str(REPO))
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'step 2/2' in out.stdout
  assert any((workdir / 'checkpoints').glob('[0-9]*'))
  acc = read_events(workdir)
  assert [e.step for e in acc.Scalars('loss/D')] == [1, 2]
  assert acc.Images('samples/G_ema')
