"""The authors' PyTorch code, extracted from the git mirror for parity tests and fixture scripts.

`reference_code` extracts files of one of the two code bases into a temp dir and makes them
importable for the duration of a `with` block; `projected_reference` does that for
Diffusion-ProjectedGAN's `pg_modules`, with the few shims today's libraries need. Nothing of the
reference is copied into this repository. Both skip (pytest.skip) without torch or the mirror.
"""
import contextlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest

BESIDE = pathlib.Path(__file__).resolve().parents[2]   # the folder holding the checkout
REFERENCE_MIRROR = pathlib.Path(os.environ.get(
    "DGAN_REFERENCE_REPO", BESIDE / ".mirror" / "Zhendong-Wang+Diffusion-GAN" / "repo"))


@contextlib.contextmanager
def reference_code(root: pathlib.Path, folder: str, paths, packages):
  """Extracts `paths` (relative to `folder`) of the mirror into `root` and puts `root/folder`
  first on sys.path; on exit removes it and the imported top-level `packages` again."""
  pytest.importorskip("torch")
  if not REFERENCE_MIRROR.exists():
    pytest.skip(f"reference mirror {REFERENCE_MIRROR} not found")
  archive = subprocess.run(["git", "-C", str(REFERENCE_MIRROR), "archive", "HEAD",
                            *[f"{folder}/{p}" for p in paths]],
                           capture_output=True, check=True).stdout
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    tar.extractall(root, filter="data")
  src = str(root / folder)
  sys.path.insert(0, src)   # the reference's persistence checks re-import torch_utils
  try:
    yield src
  finally:
    sys.path.remove(src)
    for name in [n for n in sys.modules if n.split(".")[0] in packages]:
      del sys.modules[name]


@contextlib.contextmanager
def _shims(timm):
  """What the reference (written for timm 0.4.12, numpy 1.21) needs today, undone on exit:

  * `timm.create_model(..., pretrained=True)` would download: built with random weights instead
    (tests copy weights in anyway);
  * timm >= 0.9 folds the stem's ReLU6 into `bn1` (BatchNormAct2d) and has no `act1`; the
    reference's `nn.Sequential(conv_stem, bn1, act1, ...)` gets an `nn.Identity` there, which
    keeps its module indices (and state-dict keys) those of timm 0.4.12;
  * `np.int` (used by `Diffusion.update_T`) was removed in numpy 1.24: aliased to int.
  """
  import torch  # pylint: disable=import-outside-toplevel
  create = timm.create_model

  def create_model(name, pretrained=False, **kwargs):
    del pretrained
    model = create(name, pretrained=False, **kwargs)
    if not hasattr(model, 'act1'):
      model.act1 = torch.nn.Identity()
    return model
  had_int = 'int' in np.__dict__
  timm.create_model = create_model
  if not had_int:
    np.int = int
  try:
    yield
  finally:
    timm.create_model = create
    if not had_int:
      del np.int


@contextlib.contextmanager
def projected_reference(root: pathlib.Path):
  """The reference's `pg_modules` package (discriminator, projector, diffusion, blocks,
  networks_fastgan, networks_stylegan2) with its torch_utils/dnnlib, runnable on the CPU.
  Skips without torch, timm or the mirror."""
  import projected_helpers  # pylint: disable=import-outside-toplevel
  timm = projected_helpers.import_timm()
  with reference_code(root, "diffusion-projected-gan", ["torch_utils", "dnnlib", "pg_modules"],
                      ("pg_modules", "torch_utils", "dnnlib")), _shims(timm):
    # pylint: disable=import-outside-toplevel
    import pg_modules.diffusion
    import pg_modules.discriminator
    import pg_modules.networks_fastgan
    import pg_modules.networks_stylegan2
    import pg_modules.projector
    yield pg_modules
