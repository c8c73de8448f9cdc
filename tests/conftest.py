"""Test setup: eight fake CPU devices, so every sharded code path runs here as on a multi-GPU host."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def cifar10_zip():
    """The shared CIFAR-10 train zip beside the checkout; tests that need it skip when it is absent."""
    path = SHARED_DATA / "cifar10" / "train.zip"
    if not path.exists():
        pytest.skip(f"{path} not found (CI puts ../shared beside the checkout)")
    return path
