"""Issue 14.6, 11, 12: bad inputs fail before any work with one clean line (exit 2), never with a
traceback, a hang, a segfault or silent acceptance."""
import collections
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import reliability_helpers as rh
from dgan_jax import config_checks, errors, import_torch
from dgan_jax.data import folder_batches, image_folder, pipeline, schedule
from dgan_jax.interop import torch_pickle

SMOKE = '--config=configs/toy25.py:smoke'


# --- 14.6: tensors whose views reach outside their storage -----------------------------------------

class _Tensor:
  """Pickles as torch pickles a tensor (`_rebuild_tensor_v2(storage, offset, size, stride, ...)`,
  the storage via `_load_from_bytes`), with any offset, size and stride."""

  def __init__(self, values, offset, size, stride):
    self.values, self.args = np.asarray(values, np.float32), (offset, size, stride)

  def __reduce__(self):
    torch = pytest.importorskip('torch')
    storage = torch.from_numpy(self.values).storage()
    return torch._utils._rebuild_tensor_v2, (storage, *self.args, False, collections.OrderedDict())


@pytest.mark.filterwarnings('ignore:TypedStorage is deprecated')
@pytest.mark.parametrize('offset,size,stride', [
    (0, (4096, 4096), (4096, 1)),        # The segfault of the issue: 16M elements of a 4-element storage.
    (3, (2,), (1,)),                     # Offset + size past the end.
    (0, (2, 2), (1,)),                   # Size and stride of different lengths.
    (0, (2,), (-1,)),                    # Negative stride.
    (9, (), ()),                         # A scalar past the end.
])
def test_tensor_views_outside_their_storage_are_refused(tmp_path, offset, size, stride):
  path = tmp_path / 'bad.pkl'
  with open(path, 'wb') as f:
    pickle.dump({'w': _Tensor(np.arange(4), offset, size, stride)}, f)
  # In a subprocess: before the fix the first case killed the interpreter (SIGSEGV).
  code = ('from dgan_jax.interop import torch_pickle\n'
          f'try:\n  torch_pickle.load({str(path)!r}); print("LOADED")\n'
          'except torch_pickle.BadPickleError as e:\n  print("REFUSED", e)\n')
  proc = subprocess.run([sys.executable, '-c', code], env=rh.cli_env(), capture_output=True,
                        text=True, timeout=60, cwd=rh.REPO)
  assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
  assert proc.stdout.startswith('REFUSED'), proc.stdout


@pytest.mark.filterwarnings('ignore:TypedStorage is deprecated')
def test_a_valid_strided_tensor_still_loads(tmp_path):
  path = tmp_path / 'ok.pkl'
  with open(path, 'wb') as f:
    pickle.dump({'w': _Tensor(np.arange(6), 1, (2, 2), (1, 2))}, f)
  np.testing.assert_array_equal(torch_pickle.load(path)['w'], [[1, 3], [2, 4]])


@pytest.mark.parametrize('content', [b'', b'\x00' * 7, np.random.default_rng(0).bytes(4096),
                                     b'\x80\x04\x95'])
def test_empty_or_random_files_are_not_pickles(tmp_path, content):
  path = tmp_path / 'x.pkl'
  path.write_bytes(content)
  with pytest.raises(torch_pickle.BadPickleError, match='x.pkl'):
    import_torch.read_pickle(path)


def test_import_command_line_on_an_empty_file(tmp_path):
  (tmp_path / 'empty.pkl').write_bytes(b'')
  proc = rh.run_cli([f'--pkl={tmp_path / "empty.pkl"}', f'--out={tmp_path / "out"}'],
                    module='dgan_jax.import_torch')
  rh.assert_clean_error(proc, 2, 'empty.pkl is empty')
  assert not (tmp_path / 'out').exists()


# --- 14.11: config values that failed late, obscurely or not at all --------------------------------

def test_non_finite_values_inside_tuples_are_refused():
  config = rh.toy_config(steps=2)
  config.augment.strengths.imgfilter_bands = (1.0, float('nan'), 1.0, 1.0)
  with pytest.raises(errors.UserError, match=r'imgfilter_bands\[1\]=nan is not a finite'):
    config_checks.validate(config, 8)


@pytest.mark.parametrize('field,value,words', [
    ('train.log_every_steps', 0, 'train.log_every_steps=0 must be an integer >= 1'),
    ('train.checkpoint_every_kimg', -1.0, 'train.checkpoint_every_kimg=-1.0 must be >= 0'),
    ('train.sample_every_kimg', -2.0, 'train.sample_every_kimg=-2.0 must be >= 0'),
    ('eval.every_kimg', -1.0, 'eval.every_kimg=-1.0 must be >= 0'),
    ('train.keep_checkpoints', 0, 'train.keep_checkpoints=0 must be an integer >= 1'),
    ('model.width', 0, 'model.width=0 must be an integer >= 1'),
    ('seed', -1, 'seed=-1 must be an integer in [0, 2147483647]'),
    ('optim.eps', -1.0, 'optim.eps=-1.0 must be > 0'),
    ('diffusion.ada_interval', 0, 'diffusion.ada_interval=0 must be >= 1'),
    ('augment.ada_target', float('nan'), 'augment.ada_target=nan is not a finite number'),
    ('augment.ada_maxp', float('inf'), 'augment.ada_maxp=inf is not a finite number'),
])
def test_bad_values_are_refused_before_compiling(field, value, words):
  config = rh.toy_config(steps=2)
  if '.' in field:
    section, name = field.split('.')
    config[section][name] = value
  else:
    config[field] = value
  with pytest.raises(errors.UserError) as info:
    config_checks.validate(config, 8)
  assert words in str(info.value)


def _folder_dataset(root, n, corrupt=()):
  root.mkdir()
  rng = np.random.default_rng(0)
  for i in range(n):
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(root / f'{i:03d}.png')
  for i in corrupt:
    (root / f'{i:03d}.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
  return root


def test_a_dataset_smaller_than_one_batch_is_refused(tmp_path):
  from configs import base
  config = base.get_base_config()
  config.data.path, config.data.resolution = str(_folder_dataset(tmp_path / 'd', 5)), 8
  config.train.batch_size = 16
  info = pipeline.dataset_info(config.data)
  with pytest.raises(errors.UserError, match='5 images.*fewer than one batch of train.batch_size=16'):
    config_checks.check_dataset(config, info)


def test_a_corrupt_image_in_a_streamed_dataset_is_skipped_and_counted(tmp_path, capsys):
  folder = image_folder.ImageFolder(str(_folder_dataset(tmp_path / 'd', 16, corrupt=(5, 9))))
  steps = schedule.StepSchedule(folder.num_images, 8, seed=0, xflip=False)
  batches = folder_batches.FolderBatches(folder, steps, 0, pixels=None, prefetch=1, num_threads=1)
  first = [next(batches)['image'] for _ in range(4)]      # Two epochs: both bad files are met.
  assert all(b.shape == (8, 8, 8, 3) for b in first)
  assert sorted(batches.skipped) == ['005.png', '009.png']
  assert capsys.readouterr().out.count('skipped unreadable image') == 2
  batches.close()
  again = folder_batches.FolderBatches(image_folder.ImageFolder(str(tmp_path / 'd')), steps, 2,
                                       pixels=None, prefetch=1, num_threads=1)
  np.testing.assert_array_equal(next(again)['image'], first[2])   # Same substitute on restart.
  again.close()


# --- 14.11-12 through the command line: one clean line, exit 2, before compiling -----------------

@pytest.mark.parametrize('args,words', [
    ([SMOKE, '--config.train.nonexistent=1'],
     ["--config.train.nonexistent: 'nonexistent' is not a field of config.train", 'batch_size']),
    ([SMOKE, '--config.nope.x=1'], ["'nope' is not a field of config."]),
    (['--config=configs/does_not_exist.py'], ['configs/does_not_exist.py does not exist']),
    ([SMOKE, '--config.train.log_every_steps=0'], ['train.log_every_steps=0 must be an integer >= 1']),
    ([SMOKE, '--config.optim.g_lr=nan'], ['optim.g_lr=nan is not a finite number']),
    ([SMOKE, '--config.train.batch_size=1.5'], ['--config.train.batch_size=1.5']),
    ([], ['No --config given and no saved run config']),
])
def test_command_line_user_errors(tmp_path, args, words):
  proc = rh.run_cli([*args, f'--workdir={tmp_path / "run"}'])
  rh.assert_clean_error(proc, 2, *words)
  assert not (tmp_path / 'run').exists()


def test_a_config_path_found_nowhere_names_the_fix(tmp_path):
  """A relative path that exists neither here nor among the installed configs (main.py looks an
  unknown path up there first, so configs/toy25.py works from any folder)."""
  proc = rh.run_cli(['--config=configs/toy52.py:smoke', f'--workdir={tmp_path / "run"}'],
                    cwd=tmp_path)
  rh.assert_clean_error(proc, 2, 'configs/toy52.py does not exist', str(tmp_path))
  assert not (tmp_path / 'run').exists()
