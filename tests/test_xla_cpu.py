"""dgan_jax/xla_cpu.py: the XLA:CPU flag set at import, the user's own settings kept, and its effect
on a compiled convolution (no YNNPACK fusion) checked in fresh processes."""
import logging
import os
import subprocess
import sys

import pytest

from dgan_jax import xla_cpu

FLAG = f'{xla_cpu.FLAG}={xla_cpu.VALUE}'


def test_wanted_respects_user_settings():
  assert xla_cpu.wanted({}) == [FLAG]
  assert xla_cpu.wanted({'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}) == [FLAG]
  assert xla_cpu.wanted({'XLA_FLAGS': f'{xla_cpu.FLAG}='}) == []          # the user's choice
  for off in ('0', 'false', 'OFF'):
    assert xla_cpu.wanted({xla_cpu.OPT_OUT: off}) == []
  assert xla_cpu.wanted({xla_cpu.OPT_OUT: '1'}) == [FLAG]


def test_apply_appends_before_the_backend_starts(monkeypatch):
  monkeypatch.setattr(xla_cpu, '_backends_started', lambda: False)
  env = {'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false'}
  assert xla_cpu.apply(env) == [FLAG]
  assert env['XLA_FLAGS'] == f'--xla_cpu_multi_thread_eigen=false {FLAG}'
  assert xla_cpu.apply(env) == [] and env['XLA_FLAGS'].count(xla_cpu.FLAG) == 1   # idempotent
  env = {}
  xla_cpu.apply(env)
  assert env == {'XLA_FLAGS': FLAG}


def test_apply_after_the_backend_started_changes_nothing_and_warns(monkeypatch, caplog):
  monkeypatch.setattr(xla_cpu, '_backends_started', lambda: True)
  env = {'XLA_FLAGS': '--foo'}
  with caplog.at_level(logging.WARNING, logger=xla_cpu.__name__):
    assert xla_cpu.apply(env) == []
  assert env == {'XLA_FLAGS': '--foo'}
  assert 'Import dgan_jax first' in caplog.text and FLAG in caplog.text


_PROBE = """
import dgan_jax, jax, jax.numpy as jnp, os
conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
    x, w, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
text = conv.lower(jnp.zeros((2, 10, 10, 32)), jnp.zeros((3, 3, 32, 32))).compile().as_text()
print(os.environ.get('XLA_FLAGS', ''), '|', 'ynn_fusion' in text)
"""


@pytest.mark.parametrize('extra, expect_flag, expect_ynn', [
    ({}, True, False),                                       # dgan_jax's default
    ({xla_cpu.OPT_OUT: '0'}, False, True),                   # opted out: XLA's YNNPACK conv
])
def test_import_takes_effect_on_a_compiled_convolution(extra, expect_flag, expect_ynn):
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', xla_cpu.OPT_OUT)}
  env.update(extra, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True,
                       check=True, timeout=300).stdout.strip().splitlines()[-1]
  flags, ynn = out.split('|')
  assert (FLAG in flags) == expect_flag
  assert ynn.strip() == str(expect_ynn)
