"""Test setup: eight fake CPU devices, so every sharded code path runs here as on a multi-GPU host."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)

import ast  # noqa: E402

import pytest  # noqa: E402

# The mirror of the authors' code and its extraction (REFERENCE_MIRROR, BESIDE kept importable
# from here for existing users).
from reference_code import (BESIDE, REFERENCE_MIRROR, projected_reference,  # noqa: E402,F401
                            reference_code)
SHARED_DATA = BESIDE / "shared" / "data"
SHAPES_FILE = BESIDE / "shared" / "docs" / "cifar_state_dict_shapes.txt"


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
  with reference_code(tmp_path_factory.mktemp("reference"), "diffusion-stylegan2",
                      ["torch_utils", "dnnlib", "training/networks.py"],
                      ("training", "torch_utils", "dnnlib")):
    from training import networks   # pylint: disable=import-outside-toplevel
    yield networks


@pytest.fixture(scope="module")
def reference_projected(tmp_path_factory):
  """The reference's Diffusion-ProjectedGAN `pg_modules` package (discriminator, projector,
  diffusion, networks_fastgan, networks_stylegan2), runnable on the CPU with today's libraries:
  timm's backbone built with random weights (no download) and the `act1` module older timm had;
  numpy's removed `np.int` alias restored. Skipped without torch, timm or the mirror."""
  with projected_reference(tmp_path_factory.mktemp("reference")) as pg_modules:
    yield pg_modules
