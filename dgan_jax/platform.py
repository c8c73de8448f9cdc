"""The backend the code paths are built for: the default backend, or one named for lowering.

CPU-only choices (polyphase convolutions, float32 for 'auto' precision) follow `target_backend()`.
`for_platform('cuda')` builds the GPU/TPU paths on any machine, so a CPU test can lower the exact
programs a GPU or TPU would run (`jax.export` with `platforms=('cuda', 'tpu')`).
"""
from __future__ import annotations

import contextlib

import jax

_override: list[str] = []


def target_backend() -> str:
  return _override[-1] if _override else jax.default_backend()


@contextlib.contextmanager
def for_platform(name: str):
  """Within the block, networks and steps are built for backend `name` ('cuda', 'tpu', 'cpu')."""
  _override.append(name)
  try:
    yield
  finally:
    _override.pop()
