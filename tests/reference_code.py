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

BESIDE = pathlib.Path(__file__).resolve().parents[2]   # the folder holding the checkout
REFERENCE_MIRROR = pathlib.Path(os.environ.get(
    "DGAN_REFERENCE_REPO", BESIDE / ".mirror" / "Zhendong-Wang+Diffusion-GAN" / "repo"))
STYLEGAN2_PATHS = ["diffusion-stylegan2/torch_utils", "diffusion-stylegan2/dnnlib",
                   "diffusion-stylegan2/training/networks.py"]
# Module roots the reference code imports by these names; dropped from sys.modules after use.
REFERENCE_PACKAGES = ("training", "torch_utils", "dnnlib", "pg_modules")


def available() -> bool:
  return REFERENCE_MIRROR.exists()


def extract(paths, root=None) -> pathlib.Path:
  """`git archive` of `paths` from the mirror's HEAD into `root` (a new temp dir by default)."""
  archive = subprocess.run(["git", "-C", str(REFERENCE_MIRROR), "archive", "HEAD", *paths],
                           capture_output=True, check=True).stdout
  root = pathlib.Path(root or tempfile.mkdtemp(prefix="reference_"))
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    tar.extractall(root, filter="data")
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
