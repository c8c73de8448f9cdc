"""Test setup: eight fake CPU devices, so every sharded code path runs here as on a multi-GPU host."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

import dgan_jax  # noqa: E402,F401  (its XLA:CPU flags, before any backend starts: dgan_jax/xla_cpu.py)

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)

# One persistent compilation cache for the whole test session (xdist workers and the command-line
# runs the tests start share it through the environment): many tests compile the same tiny steps,
# and a compiled program is keyed by its HLO, jax version and flags, so a changed code path never
# reuses a stale one. DGAN_JAX_TEST_JIT_CACHE=off disables it.
import tempfile  # noqa: E402

_JIT_CACHE = os.environ.setdefault(
    "DGAN_JAX_TEST_JIT_CACHE", os.path.join(tempfile.gettempdir(), f"dgan_jax_test_jit_cache_{os.getuid()}"))
if _JIT_CACHE != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JIT_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

import ast  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402

import reference_code  # noqa: E402
from reference_code import BESIDE, REFERENCE_MIRROR  # noqa: E402

SHARED_DATA = BESIDE / "shared" / "data"
SHAPES_FILE = BESIDE / "shared" / "docs" / "cifar_state_dict_shapes.txt"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def cifar10_zip():
    """The shared CIFAR-10 train zip beside the checkout; tests that need it skip when it is absent."""
    path = SHARED_DATA / "cifar10" / "train.zip"
    if not path.exists():
        pytest.skip(f"{path} not found (CI puts ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def reference_shapes():
  """{'G': [(key, shape, dtype), ...], 'D': [...]}: the reference cifar state dicts (shared docs)."""
  if not SHAPES_FILE.exists():
    pytest.skip(f"{SHAPES_FILE} not found (CI puts ../shared beside the checkout)")
  tables, current = {}, None
  for line in SHAPES_FILE.read_text().splitlines():
    if line.startswith("=== STATE_DICT"):
      current = tables.setdefault(line.split()[2], [])
    elif current is not None and line and not line.startswith("#"):
      key, rest = line.split(" ", 1)
      shape, dtype = rest.rsplit(" ", 1)
      current.append((key, ast.literal_eval(shape), dtype))
  return tables


@pytest.fixture(scope="module")
def reference_networks(tmp_path_factory):
  """The reference's `training.networks` (with its torch_utils/dnnlib), extracted from the git
  mirror of the authors' repository into a temp dir; skipped without torch or the mirror."""
  pytest.importorskip("torch")
  if not reference_code.available():
    pytest.skip(f"reference mirror {REFERENCE_MIRROR} not found")
  root = reference_code.extract(reference_code.STYLEGAN2_PATHS, tmp_path_factory.mktemp("reference"))
  # The reference's persistence checks re-import torch_utils, so its folder stays on sys.path.
  with reference_code.on_path(root / "diffusion-stylegan2"):
    from training import networks   # pylint: disable=import-outside-toplevel
    yield networks


def _reference_or_skip():
  pytest.importorskip("torch")
  if not reference_code.available():
    pytest.skip(f"reference mirror {REFERENCE_MIRROR} not found")


@pytest.fixture(scope="module")
def reference_augment(tmp_path_factory):
  """(adaaug, diffaug): the reference's `training/adaaug.py` and `training/diffaug.py` of
  diffusion-stylegan2, importable on the CPU (their CUDA ops fall back to plain torch ops)."""
  _reference_or_skip()
  with reference_code.imported(tmp_path_factory.mktemp("reference_augment"), "diffusion-stylegan2",
                               ["torch_utils", "dnnlib", "training/adaaug.py", "training/diffaug.py"],
                               ["training.adaaug", "training.diffaug"]) as modules:
    yield modules


@pytest.fixture(scope="module")
def reference_insgen(tmp_path_factory):
  """The reference's Diffusion-InsGen networks, contrastive heads and diffusion module
  (reference_code.insgen_reference); skipped without torch or the mirror."""
  _reference_or_skip()
  with reference_code.insgen_reference(tmp_path_factory.mktemp("reference_insgen")) as modules:
    yield modules


@pytest.fixture(scope="module")
def reference_projected(tmp_path_factory):
  """The reference's Diffusion-ProjectedGAN `pg_modules` package (discriminator, projector,
  diffusion, networks_fastgan, networks_stylegan2), runnable on the CPU with today's libraries
  (see reference_code.projected_reference). Skipped without torch, timm or the mirror."""
  with reference_code.projected_reference(tmp_path_factory.mktemp("reference")) as pg_modules:
    yield pg_modules


@pytest.fixture
def fake_reference_modules(monkeypatch):
  """Stand-ins for the reference's torch_utils.persistence / dnnlib.util, so tests pickle files in
  its persistence format without its code (tests/interop_helpers.py: mimic_pickle)."""
  from tests import interop_helpers  # pylint: disable=import-outside-toplevel
  return interop_helpers.install_fake_reference_modules(monkeypatch)
