"""The command line works from any folder: config names resolve to the configs installed with the
package, an absolute --config loads, and a run resumes with only --workdir (its saved config)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_config_names_resolve_to_the_installed_configs(tmp_path, monkeypatch):
  from dgan_jax import main   # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(tmp_path)   # no configs/ here
  configs = ROOT / 'configs'
  assert main.configs_dir() == configs
  for given in ('configs/cifar10.py', 'cifar10.py', 'cifar10'):
    assert main.resolve_config_arg([f'--config={given}:smoke']) == [f'--config={configs / "cifar10.py"}:smoke']
  absolute = f'--config={configs / "toy25.py"}'
  assert main.resolve_config_arg([absolute, '--workdir=x']) == [absolute, '--workdir=x']
  (tmp_path / 'configs').mkdir()     # a file that exists here wins over the installed one
  (tmp_path / 'configs' / 'toy25.py').write_text('')
  assert main.resolve_config_arg(['--config=configs/toy25.py']) == ['--config=configs/toy25.py']


@pytest.mark.slow   # two command-line runs (about 40 s on a 2-core CPU)
def test_train_and_resume_from_a_temporary_folder(tmp_path):
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_PLATFORMS': 'cpu'}

  def cli(*args):
    result = subprocess.run([sys.executable, '-m', 'dgan_jax.main', *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  cli(f'--config={ROOT / "configs" / "toy25.py"}:smoke', '--workdir=run',
      '--config.train.total_steps=4', '--config.train.log_every_steps=2')
  out = cli('--workdir=run', '--config.train.total_steps=6')    # the saved config.json, resumed
  assert 'Resumed from' in out and 'step 6/6' in out
