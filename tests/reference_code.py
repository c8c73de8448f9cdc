"""The authors' reference code, extracted from the git mirror into a temp dir (tests and fixture
scripts; never committed). `REFERENCE_MIRROR` is $DGAN_REFERENCE_REPO or the mirror beside the
checkout; `extract(paths)` returns the folder holding the extracted files, `on_path` / `imported`
make them importable for a `with` block and forget the reference's packages afterwards."""
import contextlib
import importlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

BESIDE = pathlib.Path(__file__).resolve().parents[2]   # the folder holding the checkout
REFERENCE_MIRROR = pathlib.Path(os.environ.get(
    "DGAN_REFERENCE_REPO", BESIDE / ".mirror" / "Zhendong-Wang+Diffusion-GAN" / "repo"))
STYLEGAN2_PATHS = ["diffusion-stylegan2/torch_utils", "diffusion-stylegan2/dnnlib",
                   "diffusion-stylegan2/training/networks.py"]
INSGEN_MODULES = ["training.networks", "training.contrastive_head", "training.augment"]
# Module roots the reference code imports by these names; dropped from sys.modules after use.
REFERENCE_PACKAGES = ("training", "torch_utils", "dnnlib", "pg_modules")


def available() -> bool:
  return REFERENCE_MIRROR.exists()


def _under(name: str, path: str) -> bool:
  return name == path or name.startswith(path.rstrip("/") + "/")


def extract(paths, root=None) -> pathlib.Path:
  """`git archive` of `paths` from the mirror's HEAD into `root` (a new temp dir by default).

  The mirror may also be a tar file of such an archive (`git -C MIRROR archive HEAD > FILE.tar`),
  for machines without git or the mirror (benchmarks/device_check.sh carries one)."""
  root = pathlib.Path(root or tempfile.mkdtemp(prefix="reference_"))
  if REFERENCE_MIRROR.is_file():
    archive = REFERENCE_MIRROR.read_bytes()
  else:
    archive = subprocess.run(["git", "-C", str(REFERENCE_MIRROR), "archive", "HEAD", *paths],
                             capture_output=True, check=True).stdout
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    members = [m for m in tar.getmembers() if any(_under(m.name, p) for p in paths)]
    missing = [p for p in paths if not any(_under(m.name, p) for m in members)]
    if missing:
      raise FileNotFoundError(f"{REFERENCE_MIRROR} holds none of {missing}")
    tar.extractall(root, members=members, filter="data")
  return root


class on_path:
  """Context manager: `src` first on sys.path, the reference packages forgotten on exit."""

  def __init__(self, src):
    self.src = str(src)

  def __enter__(self):
    sys.path.insert(0, self.src)
    return self

  def __exit__(self, *exc):
    sys.path.remove(self.src)
    for name in [n for n in sys.modules if n.split(".")[0] in REFERENCE_PACKAGES]:
      del sys.modules[name]


@contextlib.contextmanager
def imported(root, project: str, paths, modules):
  """Extracts `paths` of `project` (e.g. 'diffusion-stylegan2') into `root` and yields the imported
  `modules`; the project folder is first on sys.path while the context is open."""
  extract([f"{project}/{p}" for p in paths], root)
  with on_path(pathlib.Path(root) / project):
    yield [importlib.import_module(name) for name in modules]


def perturb(net, seed: int = 0):
  """A reference torch network with random non-zero biases / noise strengths (+0.3 N(0, 1)) and
  w_avg, so every term of its forward matters in a comparison; returns the network."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  with torch.no_grad():
    for _, p in net.named_parameters():
      if p.ndim <= 1:
        p.add_(torch.randn_like(p) * 0.3)
    for name, b in net.named_buffers():
      if name.endswith('w_avg'):
        b.normal_()
  return net


def skip_unless_available():
  """pytest.skip without torch or the mirror (for tests and fixtures that run the reference)."""
  import pytest  # pylint: disable=import-outside-toplevel
  pytest.importorskip("torch")
  if not available():
    pytest.skip(f"reference mirror {REFERENCE_MIRROR} not found")


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
  timm.create_model = create_model
  try:
    with numpy_aliases():
      yield
  finally:
    timm.create_model = create


@contextlib.contextmanager
def numpy_aliases():
  """`np.int` (used by the reference's `Diffusion.update_T`, removed in numpy 1.24) aliased to
  int while the block runs."""
  had_int = 'int' in np.__dict__
  if not had_int:
    np.int = int
  try:
    yield
  finally:
    if not had_int:
      del np.int


@contextlib.contextmanager
def projected_reference(root: pathlib.Path):
  """The reference's `pg_modules` package (discriminator, projector, diffusion, blocks,
  networks_fastgan, networks_stylegan2) with its torch_utils/dnnlib, runnable on the CPU.
  Skips without torch, timm or the mirror."""
  import projected_helpers  # pylint: disable=import-outside-toplevel
  timm = projected_helpers.import_timm()
  skip_unless_available()
  with imported(root, "diffusion-projected-gan", ["torch_utils", "dnnlib", "pg_modules"], []), \
      _shims(timm):
    # pylint: disable=import-outside-toplevel
    import pg_modules.diffusion
    import pg_modules.discriminator
    import pg_modules.networks_fastgan
    import pg_modules.networks_stylegan2
    import pg_modules.projector
    yield pg_modules


@contextlib.contextmanager
def insgen_reference(root: pathlib.Path):
  """The reference's Diffusion-InsGen `training.networks` (D with return_feats), `contrastive_head`
  (CLHead) and `augment` (its diffusion AugmentPipe), with np.int aliased; yields them as a
  namespace. No skip here (fixture scripts use it too): tests call skip_unless_available first."""
  import types  # pylint: disable=import-outside-toplevel
  with imported(root, "diffusion-insgen", ["torch_utils", "dnnlib", "training"],
                INSGEN_MODULES) as (networks, contrastive_head, augment), numpy_aliases():
    yield types.SimpleNamespace(networks=networks, contrastive_head=contrastive_head,
                                augment=augment)
