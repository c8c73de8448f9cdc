"""The authors' PyTorch code (reference), extracted from its git mirror into a temp dir and imported.

Used by the conftest fixtures and by the tests/fixtures/make_*.py scripts that record reference
outputs. The mirror path comes from $DGAN_REFERENCE_REPO, default
../.mirror/Zhendong-Wang+Diffusion-GAN/repo beside the checkout.
"""
import contextlib
import importlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile

BESIDE = pathlib.Path(__file__).resolve().parents[2]   # the folder holding the checkout
REFERENCE_MIRROR = pathlib.Path(os.environ.get(
    "DGAN_REFERENCE_REPO", BESIDE / ".mirror" / "Zhendong-Wang+Diffusion-GAN" / "repo"))
_TOP_LEVEL = ("training", "torch_utils", "dnnlib", "pg_modules")


def extract(root: pathlib.Path, paths) -> None:
  """Writes the mirror's HEAD version of `paths` (files or folders) under `root`."""
  archive = subprocess.run(["git", "-C", str(REFERENCE_MIRROR), "archive", "HEAD", *paths],
                           capture_output=True, check=True).stdout
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    tar.extractall(root, filter="data")


@contextlib.contextmanager
def imported(root: pathlib.Path, project: str, paths, modules):
  """Extracts `paths` of `project` (e.g. 'diffusion-stylegan2') and yields the imported `modules`.

  The project folder is put first on sys.path while the context is open (the reference's
  persistence checks re-import torch_utils); its modules are dropped from sys.modules on exit.
  """
  extract(root, [f"{project}/{p}" for p in paths])
  src = str(root / project)
  sys.path.insert(0, src)
  try:
    yield [importlib.import_module(name) for name in modules]
  finally:
    sys.path.remove(src)
    for name in [n for n in sys.modules if n.split(".")[0] in _TOP_LEVEL]:
      del sys.modules[name]
