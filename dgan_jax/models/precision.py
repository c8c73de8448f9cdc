"""Compute dtype of the reduced-precision (high-resolution) blocks.

The reference runs its `num_fp16_res` highest resolutions in float16 with activations clamped to
+-conv_clamp. JAX accelerators prefer bfloat16 (same range as float32, so no loss scaling), which
is what 'auto' picks on GPU/TPU; on CPU 'auto' stays float32, where bf16 is emulated and slow.
"""
import jax.numpy as jnp

from dgan_jax import platform

MIXED_PRECISION = ('auto', 'bfloat16', 'float16', 'float32')


def resolve_compute_dtype(mixed_precision: str = 'auto', backend: str | None = None):
  """Map config.model.mixed_precision to a jnp dtype ('auto': bf16 on GPU/TPU, f32 on CPU)."""
  if mixed_precision not in MIXED_PRECISION:
    raise ValueError(f'mixed_precision must be one of {MIXED_PRECISION}, got {mixed_precision!r}.')
  if mixed_precision == 'auto':
    backend = backend or platform.target_backend()
    return jnp.bfloat16 if backend in ('gpu', 'cuda', 'rocm', 'tpu') else jnp.float32
  return {'bfloat16': jnp.bfloat16, 'float16': jnp.float16, 'float32': jnp.float32}[
      mixed_precision]
