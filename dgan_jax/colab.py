"""What the notebooks in colab/ share: runtime detection, the install that keeps the runtime's
accelerator jax, the device check, and running a command with its output streamed live.

Standard library only at import time: a notebook imports this from the checkout before dgan_jax's
dependencies are installed.

  from dgan_jax import colab
  runtime = colab.detect_runtime()          # 'gpu', 'tpu' or 'cpu'
  colab.install(checkout, runtime)          # pip install -e checkout[cuda12|tpu]
  colab.check_accelerator(runtime)          # raises if jax sees only the CPU on a GPU/TPU runtime
  colab.run('python -m dgan_jax.main ...', watch=workdir)   # streams; shows new sample grids
"""
from __future__ import annotations

import glob
import importlib.metadata
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

EXTRAS = {'gpu': 'cuda12', 'tpu': 'tpu', 'cpu': ''}   # pyproject.toml's extras per runtime


def in_colab() -> bool:
  return 'google.colab' in sys.modules


def detect_runtime(env=None) -> str:
  """'tpu', 'gpu' or 'cpu', from the machine (no jax import: it runs before the install)."""
  env = os.environ if env is None else env
  if any(env.get(k) for k in ('COLAB_TPU_ADDR', 'TPU_NAME', 'TPU_ACCELERATOR_TYPE')) or \
      glob.glob('/dev/accel[0-9]*') or glob.glob('/dev/vfio/[0-9]*'):
    return 'tpu'
  smi = shutil.which('nvidia-smi')
  if smi and subprocess.run([smi, '-L'], capture_output=True, check=False).returncode == 0:
    return 'gpu'
  return 'cpu'


def _installed(distribution: str) -> bool:
  try:
    importlib.metadata.version(distribution)
    return True
  except importlib.metadata.PackageNotFoundError:
    return False


def project_requirements(checkout: str | os.PathLike, extra: str = '') -> list[str]:
  """The checkout's dependencies (pyproject.toml) plus `extra`'s."""
  try:
    import tomllib  # pylint: disable=import-outside-toplevel  (Python >= 3.11)
  except ImportError:
    import tomli as tomllib  # pylint: disable=import-outside-toplevel
  project = tomllib.loads((pathlib.Path(checkout) / 'pyproject.toml').read_text())['project']
  return list(project['dependencies']) + (project['optional-dependencies'][extra] if extra else [])


def install_commands(checkout: str | os.PathLike, runtime: str,
                     tensorflow_present: bool | None = None) -> list[list[str]]:
  """The pip commands that install the checkout for `runtime`.

  The extra matching the runtime (`cuda12`, `tpu`) makes pip install an accelerator jax, never a
  CPU one over the runtime's. Where a full `tensorflow` is already installed (Colab), the project
  goes in without its `tensorflow-cpu` requirement, which would overwrite that tensorflow's files.
  """
  extra = EXTRAS[runtime]
  if tensorflow_present is None:
    tensorflow_present = _installed('tensorflow') and not _installed('tensorflow-cpu')
  pip = [sys.executable, '-m', 'pip', 'install', '-q']
  target = f'{checkout}[{extra}]' if extra else str(checkout)
  if not tensorflow_present:
    return [pip + ['-e', target]]
  needs = [r for r in project_requirements(checkout, extra)
           if re.split(r'[<>=\[ ;]', r, maxsplit=1)[0] != 'tensorflow-cpu']
  return [pip + needs, pip + ['--no-deps', '-e', str(checkout)]]


def install(checkout: str | os.PathLike, runtime: str) -> None:
  for command in install_commands(checkout, runtime):
    print('$', shlex.join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def check_accelerator(runtime: str):
  """Prints jax's devices; raises if jax runs on the CPU on a GPU or TPU runtime."""
  import jax  # pylint: disable=import-outside-toplevel
  devices = jax.devices()
  print(f'jax {jax.__version__}, runtime {runtime}: {devices}')
  if runtime != 'cpu' and devices[0].platform == 'cpu':
    raise RuntimeError(
        f'This is a {runtime.upper()} runtime but jax sees only the CPU: jax without its '
        f'{runtime.upper()} backend is installed. Reinstall with the matching extra '
        f'(pip install -e "<checkout>[{EXTRAS[runtime]}]"), then Runtime > Restart session.')
  return devices


def checkout_root() -> pathlib.Path | None:
  """The checkout that holds the dgan_jax package in use, or None for an installed package."""
  root = pathlib.Path(__file__).resolve().parents[1]
  return root if (root / 'pyproject.toml').is_file() else None


def _display_image(path: pathlib.Path) -> None:
  try:
    from IPython.display import Image, display  # pylint: disable=import-outside-toplevel
    display(Image(filename=str(path)))
  except ImportError:
    pass


def run(command: str, watch: str | os.PathLike | None = None, pattern: str = 'fakes*.png') -> None:
  """Runs a shell `command` (a leading `python` is this kernel's Python), streaming its output.

  Raises CalledProcessError when it fails (a notebook's `!command` would carry on silently). With
  `watch`, every new file matching `pattern` in that folder (the sample grids) is shown as it
  appears. Child processes import the same dgan_jax as this kernel.
  """
  if command.startswith('python '):
    command = shlex.quote(sys.executable) + command[len('python'):]
  env = dict(os.environ)
  root = checkout_root()
  if root:
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(root), env.get('PYTHONPATH')]))
  env.setdefault('PYTHONUNBUFFERED', '1')
  watch = pathlib.Path(watch) if watch else None
  seen = set(watch.glob(pattern)) if watch and watch.is_dir() else set()
  print('$', command, flush=True)
  proc = subprocess.Popen(command, shell=True, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1)

  def show_new():
    if watch and watch.is_dir():
      for path in sorted(set(watch.glob(pattern)) - seen):
        print(path.name, flush=True)
        _display_image(path)
        seen.add(path)
  for line in proc.stdout:
    print(line, end='', flush=True)
    show_new()
  show_new()
  if proc.wait():
    raise subprocess.CalledProcessError(proc.returncode, command)


def fetch_inception_weights(timeout: float = 30.0) -> bool:
  """Whether the FID Inception weights are available, downloading pytorch-fid's file into the
  weights folder when missing (converting it on first use needs torch). Prints why not."""
  import urllib.request  # pylint: disable=import-outside-toplevel
  from dgan_jax.metrics import inception, weights  # pylint: disable=import-outside-toplevel
  folder = weights.weights_dir()
  if any((folder / name).exists() for name in inception.FILE_NAMES):
    return True
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    print('The Inception weights come as a PyTorch file, and torch is not installed.')
    return False
  url = inception.URLS[0]
  target = folder / url.rsplit('/', 1)[1]
  partial = target.with_name(target.name + '.part')
  try:
    folder.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, 'wb') as f:
      shutil.copyfileobj(response, f)
    partial.replace(target)
  except OSError as e:
    print(f'Could not download {url} ({e}); put the file into {folder} to compute FID.')
    partial.unlink(missing_ok=True)
    return False
  print(f'Downloaded {target}')
  return True
