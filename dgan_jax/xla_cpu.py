"""XLA:CPU flags dgan_jax sets when it is imported, before JAX starts a backend.

XLA:CPU (jaxlib 0.10, 0.11) hands convolutions to YNNPACK by default. On the development CPU (2-core
AMD EPYC, AVX2) YNNPACK's convolutions were slower than XLA's own (Eigen) ones whenever the
convolution has no padding of its own, which is the form most of ours take on the CPU (models/conv.py
builds padded, strided and transposed convolutions from 'valid' pieces; 1x1 convolutions have no
padding; under vmap XLA no longer folds a separate pad into the convolution). Measured with
`python benchmarks/xla_cpu_flags.py` (docs/models.md, *XLA:CPU flags*): a 3x3 convolution
16x34x34x512 -> 512, 1.43 s with YNNPACK against 0.47 s without; the projected family's `:small`
training step 372 -> 265 s/kimg. Dots and elementwise fusions stay with YNNPACK.

`apply()` appends `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` (remove
convolutions from the default set) to XLA_FLAGS, unless the user's XLA_FLAGS already names that
flag or DGAN_JAX_XLA_CPU_DEFAULTS=0. XLA reads XLA_FLAGS once, when JAX starts its first backend:
import dgan_jax before the first JAX computation (the CLI, tests and benchmarks do). The flag only
concerns XLA:CPU; GPU and TPU programs are unchanged.
"""
from __future__ import annotations

import logging
import os

FLAG = '--xla_cpu_experimental_ynn_fusion_type'
VALUE = '-individual_convolution'
OPT_OUT = 'DGAN_JAX_XLA_CPU_DEFAULTS'


def wanted(environ=None) -> list[str]:
  """The flags to add to `environ`'s XLA_FLAGS (none when the user set the flag or opted out)."""
  environ = os.environ if environ is None else environ
  if environ.get(OPT_OUT, '1').strip().lower() in ('0', 'false', 'no', 'off'):
    return []
  if FLAG + '=' in environ.get('XLA_FLAGS', ''):
    return []
  return [f'{FLAG}={VALUE}']


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):      # a JAX without this helper: assume not started
    return False


def apply(environ=None) -> list[str]:
  """Append the wanted flags to XLA_FLAGS; returns them. If JAX already started its backends the
  flags cannot take effect any more: nothing is changed and a warning says how to get them."""
  environ = os.environ if environ is None else environ
  flags = wanted(environ)
  if not flags:
    return []
  if _backends_started():
    logging.getLogger(__name__).warning(
        'JAX started before dgan_jax was imported, so XLA:CPU keeps YNNPACK convolutions (up to '
        '3x slower here). Import dgan_jax first, or set XLA_FLAGS=%s; on GPU/TPU this does not '
        'matter.', ' '.join(flags))
    return []
  environ['XLA_FLAGS'] = ' '.join([environ.get('XLA_FLAGS', '').strip()] + flags).strip()
  return flags
