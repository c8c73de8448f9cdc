"""The colab/ notebooks run headless on the CPU with smoke parameters, and their shared helpers
(dgan_jax/colab.py) pick the right install for the runtime and stop on a failed command.

Each notebook's first code cell (tagged `parameters`) is replaced by its own assignments with the
smoke values below, LOCAL_CHECKOUT = this checkout and INSTALL = False; the notebook then runs in
a temporary folder (so its commands also prove that dgan_jax runs from outside the checkout).
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

from dgan_jax import colab

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / 'colab'
SMOKE = {
    'toy25': dict(SMOKE=True),
    'pretrained': dict(SMOKE=True, FID_METRIC='', SEEDS='0-3'),
    'train_cifar10': dict(SMOKE=True, WORKDIR='run', TOTAL_KIMG=2.0, MORE_KIMG=2.0, FID_METRIC='',
                          SEEDS='0-3'),
}


def read(name):
  nbformat = pytest.importorskip('nbformat')
  return nbformat.read(NOTEBOOKS / f'{name}.ipynb', as_version=4)


def parameters_cell(nb):
  code = [cell for cell in nb.cells if cell.cell_type == 'code']
  assert 'parameters' in code[0].metadata.get('tags', []), 'the first code cell must be the parameters'
  return code[0]


def with_parameters(nb, values):
  """`nb` with its parameters cell rewritten: defaults updated by `values` (all must exist)."""
  cell = parameters_cell(nb)
  defaults = {}
  exec(cell.source, {}, defaults)   # pylint: disable=exec-used  (plain assignments)
  unknown = set(values) - set(defaults)
  assert not unknown, f'not parameters of the notebook: {unknown}'
  merged = {**defaults, **values}
  cell.source = '\n'.join(f'{k} = {v!r}' for k, v in merged.items())
  return nb


def execute(name, folder, monkeypatch, timeout=600):
  """Runs notebook `name` with smoke parameters in `folder`; returns the executed notebook."""
  nbclient = pytest.importorskip('nbclient')
  pytest.importorskip('ipykernel')
  nb = with_parameters(read(name), {**SMOKE[name], 'LOCAL_CHECKOUT': str(ROOT), 'INSTALL': False})
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '3')
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(filter(None, [str(ROOT),
                                                                 os.environ.get('PYTHONPATH')])))
  nbclient.NotebookClient(nb, timeout=timeout, kernel_name='python3',
                          resources={'metadata': {'path': str(folder)}}).execute()
  return nb


def output_text(nb) -> str:
  return '\n'.join(out.get('text', '') for cell in nb.cells if cell.cell_type == 'code'
                   for out in cell.get('outputs', []) if out.get('output_type') == 'stream')


def images_shown(nb) -> int:
  return sum('image/png' in out.get('data', {}) for cell in nb.cells if cell.cell_type == 'code'
             for out in cell.get('outputs', []))


# --- Every notebook: its form ---------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(SMOKE))
def test_notebook_form(name):
  """A parameters cell first, with REPO_URL, LOCAL_CHECKOUT, INSTALL and SMOKE; code cells that
  parse; no `!` shell lines (their failures pass silently) and nothing that hides errors."""
  from IPython.core.inputtransformer2 import TransformerManager  # pylint: disable=import-outside-toplevel
  nb = read(name)
  defaults = {}
  exec(parameters_cell(nb).source, {}, defaults)   # pylint: disable=exec-used
  assert {'REPO_URL', 'LOCAL_CHECKOUT', 'INSTALL', 'SMOKE'} <= set(defaults)
  for cell in nb.cells:
    if cell.cell_type != 'code':
      continue
    assert not any(line.lstrip().startswith('!') for line in cell.source.splitlines()), cell.source
    assert '2>/dev/null' not in cell.source and '|| true' not in cell.source
    ast.parse(TransformerManager().transform_cell(cell.source))


# --- The helpers ----------------------------------------------------------------------------------


def test_runtime_detection_from_the_environment(monkeypatch):
  assert colab.detect_runtime({'COLAB_TPU_ADDR': '10.0.0.2:8470'}) == 'tpu'
  assert colab.detect_runtime({'TPU_ACCELERATOR_TYPE': 'v5litepod-1'}) == 'tpu'
  monkeypatch.setattr(colab.shutil, 'which', lambda name: None)
  monkeypatch.setattr(colab.glob, 'glob', lambda pattern: [])
  assert colab.detect_runtime({}) == 'cpu'


def test_install_uses_the_runtime_extra_and_keeps_a_full_tensorflow():
  gpu = colab.install_commands(ROOT, 'gpu', tensorflow_present=False)
  assert gpu == [[sys.executable, '-m', 'pip', 'install', '-q', '-e', f'{ROOT}[cuda12]']]
  assert colab.install_commands(ROOT, 'cpu', tensorflow_present=False)[0][-1] == str(ROOT)
  deps, package = colab.install_commands(ROOT, 'tpu', tensorflow_present=True)
  assert 'jax[tpu]>=0.10' in deps and 'flax>=0.12' in deps
  assert not any(d.startswith('tensorflow-cpu') for d in deps)
  assert any(d.startswith('tensorflow-datasets') for d in deps)   # only tensorflow-cpu is left out
  assert package[-3:] == ['--no-deps', '-e', str(ROOT)]


def test_accelerator_check_fails_loudly_on_a_cpu_jax():
  assert colab.check_accelerator('cpu')[0].platform == 'cpu'
  with pytest.raises(RuntimeError, match=r'GPU runtime but jax sees only the CPU.*\[cuda12\]'):
    colab.check_accelerator('gpu')


def test_run_streams_output_shows_new_grids_and_raises_on_failure(tmp_path, capsys):
  script = (f'python -c "import pathlib, dgan_jax; print(dgan_jax.__file__); '
            f'pathlib.Path({str(tmp_path)!r}, \'fakes000001.png\').write_bytes(b\'x\')"')
  (tmp_path / 'fakes000000.png').write_bytes(b'old')
  colab.run(script, watch=tmp_path)
  out = capsys.readouterr().out
  assert str(ROOT / 'dgan_jax' / '__init__.py') in out      # children import the same dgan_jax
  assert 'fakes000001.png' in out and 'fakes000000.png' not in out
  with pytest.raises(subprocess.CalledProcessError):
    colab.run('python -c "import sys; print(\'failing\'); sys.exit(3)"')
  assert 'failing' in capsys.readouterr().out


# --- The notebooks, executed ----------------------------------------------------------------------


def test_toy25_notebook_runs(tmp_path, monkeypatch):
  nb = execute('toy25', tmp_path, monkeypatch)
  for run in ('toy25', 'toy25_vanilla'):
    assert (tmp_path / 'runs' / run / 'results.json').exists()
  assert 'modes;' in output_text(nb)
  assert images_shown(nb) >= 3


def test_pretrained_notebook_runs(tmp_path, monkeypatch):
  nb = execute('pretrained', tmp_path, monkeypatch)
  run = tmp_path / 'runs' / 'pretrained'
  assert (run / 'generate' / 'grid.png').exists() and (run / 'generate' / 'interpolation.gif').exists()
  assert 'FID skipped' in output_text(nb)
  assert images_shown(nb) >= 2


def test_train_cifar10_notebook_runs(tmp_path, monkeypatch):
  nb = execute('train_cifar10', tmp_path, monkeypatch, timeout=900)
  text = output_text(nb)
  assert 'Resumed from' in text and 'step 4/4' in text
  assert (tmp_path / 'generated' / 'grid.png').exists()
  if 'export skipped' not in text:
    assert (tmp_path / 'network.pt').exists() and (tmp_path / 'torch_samples.png').exists()
  assert images_shown(nb) >= 4


def test_committed_notebooks_are_what_the_builder_writes(tmp_path):
  pytest.importorskip('nbformat')
  subprocess.run([sys.executable, str(NOTEBOOKS / 'make_notebooks.py'), str(tmp_path)], check=True,
                 capture_output=True)
  for name in SMOKE:
    assert (tmp_path / f'{name}.ipynb').read_text() == (NOTEBOOKS / f'{name}.ipynb').read_text(), (
        f'colab/{name}.ipynb differs from colab/make_notebooks.py: edit the script and rerun it')
