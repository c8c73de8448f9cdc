"""benchmarks/vs_reference.py: its settings and checks (fast), and a tiny side-by-side run of the
projected family against the reference's code (slow; needs torch, timm and the mirror)."""
import importlib.util
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'benchmarks'))
import vs_reference  # noqa: E402  pylint: disable=wrong-import-position

import reference_code  # noqa: E402  pylint: disable=wrong-import-position


def test_projected_config_is_the_variant_with_a_random_backbone():
  small = vs_reference.make_config('projected', 'small', None)
  assert (small.train.batch_size, small.train.batch_gpu) == (16, 8)
  assert small.model.projected.ngf == 16
  full = vs_reference.make_config('projected', '', None)
  assert (full.train.batch_size, full.train.batch_gpu) == (64, 16)
  assert full.model.projected.ngf == 128
  for config in (small, full):
    assert config.model.projected.backbone == 'random'
    assert not vs_reference.has_lazy_r1(config)
  assert vs_reference.make_config('projected', 'small', 4).train.batch_gpu == 4
  assert vs_reference.make_config('projected', 'small', 32).train.batch_gpu == 8


def test_stylegan2_config_keeps_its_defaults():
  config = vs_reference.make_config('stylegan2', 'small', None)
  assert config.train.batch_size == 32
  assert config.model.mixed_precision == 'float32'
  assert vs_reference.has_lazy_r1(config)


@pytest.mark.parametrize('family,variant,batch,message', [
    ('projected', 'small', 12, r'--batch=12 is not a multiple of the sub-batch \(batch_gpu 8\)'),
    ('projected', 'tiny', None, r"--variant='tiny'.*Unknown or conflicting variant"),
    ('projected', 'small', 0, r'--batch=0 must be >= 1'),
    ('dcgan', 'small', None, r"--family='dcgan' is unknown"),
])
def test_bad_settings_name_the_fix(family, variant, batch, message):
  with pytest.raises(SystemExit, match=message):
    vs_reference.make_config(family, variant, batch)


@pytest.mark.parametrize('argv,message', [(['--family=dcgan'], "invalid choice: 'dcgan'"),
                                          (['--rounds=0'], '--rounds=0'),
                                          (['--steps=0'], '--steps=0')])
def test_bad_arguments_are_refused(argv, message, capsys):
  with pytest.raises(SystemExit):
    vs_reference.parse_args(argv)
  assert message in capsys.readouterr().err


def test_time_round_amortises_r1_only_when_the_family_has_it(monkeypatch):
  """Plain iterations take 2, 3, 10 s and the R1 one 18 s on a fake clock: the round is their
  median (3 s), or (15 x 3 + 18) / 16 with the lazy R1."""
  clock = {'t': 0.0}
  plain = iter([2.0, 3.0, 10.0, 2.0, 3.0, 10.0])
  monkeypatch.setattr(vs_reference.time, 'perf_counter', lambda: clock['t'])

  def iteration(with_r1):
    clock['t'] += 18.0 if with_r1 else next(plain)
  assert vs_reference.time_round(iteration, 3, lazy_r1=False) == 3.0
  assert vs_reference.time_round(iteration, 3, lazy_r1=True) == pytest.approx((15 * 3 + 18) / 16)


@pytest.mark.slow
def test_projected_side_by_side_runs():
  """One round of one iteration each at batch 2 (smoke widths): both sides train and report."""
  pytest.importorskip('torch')
  if importlib.util.find_spec('timm') is None:   # imported later, torchvision's ops stubbed first
    pytest.skip('timm is not installed')
  if not reference_code.available():
    pytest.skip(f'reference mirror {reference_code.REFERENCE_MIRROR} not found')
  out = vs_reference.main(['--family=projected', '--variant=smoke', '--batch=2', '--rounds=1',
                           '--steps=1'])
  assert len(out['ratios']) == 1
  for key in ('reference_s_per_kimg', 'ours_s_per_kimg'):
    assert math.isfinite(out[key]) and out[key] > 0
  assert not hasattr(vs_reference.np, 'int')       # the reference's patches are undone


def test_cuda_reference_without_cuda_names_the_fix():
  torch = pytest.importorskip('torch')
  if torch.cuda.is_available():
    pytest.skip('this machine has CUDA')
  with pytest.raises(SystemExit, match='--torch-device=cpu'):
    vs_reference._torch_device('cuda')   # pylint: disable=protected-access
  _, wait = vs_reference._torch_device('cpu')   # pylint: disable=protected-access
  assert wait() is None


def test_reference_from_a_tar_equals_the_mirror(tmp_path, monkeypatch):
  """A `git archive` tar given as the mirror (the device check carries one: no git there) yields
  the same files as the mirror itself, and names paths it does not hold."""
  import subprocess  # pylint: disable=import-outside-toplevel
  if not reference_code.available() or reference_code.REFERENCE_MIRROR.is_file():
    pytest.skip(f'reference mirror {reference_code.REFERENCE_MIRROR} not found')
  paths = ['diffusion-projected-gan/pg_modules', 'diffusion-stylegan2/training/loss.py']
  from_git = reference_code.extract(paths, tmp_path / 'git')
  tar = tmp_path / 'reference.tar'
  tar.write_bytes(subprocess.run(['git', '-C', str(reference_code.REFERENCE_MIRROR), 'archive',
                                  'HEAD'], capture_output=True, check=True).stdout)
  monkeypatch.setattr(reference_code, 'REFERENCE_MIRROR', tar)
  from_tar = reference_code.extract(paths, tmp_path / 'tar')
  files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob('*') if p.is_file()}
  assert files(from_git) == files(from_tar) and len(files(from_tar)) > 5
  with pytest.raises(FileNotFoundError, match='no-such-folder'):
    reference_code.extract(['no-such-folder'], tmp_path / 'none')


def test_built_plugins_become_importable_by_name(monkeypatch):
  """The reference's custom_ops imports each op it built by name; the shim registers what
  `cpp_extension.load` returns (torch 2 does not), and only while it is open."""
  pytest.importorskip('torch')
  import importlib  # pylint: disable=import-outside-toplevel
  import types  # pylint: disable=import-outside-toplevel
  from torch.utils import cpp_extension  # pylint: disable=import-outside-toplevel
  built = types.ModuleType('bias_act_plugin')
  fake_load = lambda name, **kwargs: built if name == 'bias_act_plugin' else None
  monkeypatch.setattr(cpp_extension, 'load', fake_load)
  monkeypatch.delitem(sys.modules, 'bias_act_plugin', raising=False)
  assert vs_reference.cuda_plugins() == 'none (plain-torch fallback)'
  with vs_reference._plugins_importable():   # pylint: disable=protected-access
    assert cpp_extension.load('bias_act_plugin', sources=[]) is built
    assert importlib.import_module('bias_act_plugin') is built
  assert cpp_extension.load is fake_load
  assert vs_reference.cuda_plugins() == 'bias_act_plugin'
