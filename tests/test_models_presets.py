"""Preset table, apply_preset, build_models, precision and the summary CLI."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from dgan_jax.models import build_models, presets
from dgan_jax.models.precision import resolve_compute_dtype

PRESET_RESOLUTIONS = presets.PRESET_RESOLUTIONS | {'auto': 128}


def config_for(name, resolution, channels=3, **apply_kwargs):
  config = base.get_base_config()
  config.data.resolution = resolution
  config.data.channels = channels
  return presets.apply_preset(config, name, **apply_kwargs)


def test_cifar_preset_values_match_the_reference():
  config = config_for('cifar', 32)
  m = config.model
  assert (m.preset, m.num_fp16_res, m.conv_clamp, m.c_dim) == ('cifar', 4, 256.0, 0)
  assert (m.G.channel_base, m.G.channel_max, m.G.mapping_layers) == (32768, 512, 2)
  assert (m.D.architecture, m.D.mbstd_group_size, m.D.mapping_layers) == ('orig', 32, 8)
  assert m.D.t_embedding == 'raw'
  assert config.optim.g_lr == config.optim.d_lr == 0.0025
  assert config.loss.r1_gamma == 0.01
  assert config.loss.pl_weight == 0.0 and config.loss.style_mixing_prob == 0.0
  assert (config.train.batch_size, config.train.batch_gpu) == (64, 16)
  assert (config.train.ema_kimg, config.train.ema_rampup) == (500.0, 0.05)
  assert config.train.total_kimg == 100000


def test_other_presets_keep_style_mixing_pl_and_resnet():
  stl = config_for('stl10', 64)
  assert stl.model.D.architecture == 'resnet'
  assert stl.loss.style_mixing_prob == 0.9 and stl.loss.pl_weight == 2.0
  assert stl.loss.r1_gamma == 0.05 and stl.train.batch_gpu == 16
  p256 = config_for('paper256', 256)
  assert p256.model.G.channel_base == 16384 and p256.model.G.mapping_layers == 8
  assert p256.train.ema_rampup == 0.0 and p256.model.D.mbstd_group_size == 8
  sg2 = config_for('stylegan2', 1024)
  assert sg2.optim.g_lr == 0.002 and sg2.loss.r1_gamma == 10.0 and sg2.train.batch_gpu == 4


@pytest.mark.parametrize('resolution,gpus,mb,mbstd,gamma', [
    (256, 1, 16, 4, 0.0002 * 256 ** 2 / 16),
    (256, 8, 64, 4, 0.0002 * 256 ** 2 / 64),
    (32, 2, 64, 4, 0.0002 * 32 ** 2 / 64),
])
def test_auto_preset_formulas(resolution, gpus, mb, mbstd, gamma):
  config = config_for('auto', resolution, num_gpus=gpus)
  assert config.train.batch_size == mb and config.model.D.mbstd_group_size == mbstd
  assert config.train.batch_gpu == mb // gpus
  assert np.isclose(config.loss.r1_gamma, gamma)
  assert config.train.ema_kimg == mb * 10 / 32
  assert config.model.G.channel_base == (32768 if resolution >= 512 else 16384)


def test_unknown_preset_raises():
  with pytest.raises(ValueError, match='Unknown preset'):
    config_for('ffhq', 256)


def test_mixed_precision_resolution():
  assert resolve_compute_dtype('auto', 'cpu') == jnp.float32
  assert resolve_compute_dtype('auto', 'gpu') == jnp.bfloat16
  assert resolve_compute_dtype('auto', 'tpu') == jnp.bfloat16
  assert resolve_compute_dtype('float16') == jnp.float16
  with pytest.raises(ValueError, match='mixed_precision'):
    resolve_compute_dtype('fp8')


@pytest.mark.parametrize('name', sorted(PRESET_RESOLUTIONS))
def test_every_preset_builds_and_runs_with_small_channels(name):
  """Each preset's structure (depths, architectures, mbstd) at its resolution, with channel
  bases shrunk so the forward passes stay cheap; shapes and parameter layout are checked."""
  res = PRESET_RESOLUTIONS[name]
  config = config_for(name, res)
  config.model.G.channel_base = config.model.D.channel_base = 8 * res
  config.model.G.channel_max = config.model.D.channel_max = 8
  config.model.G.z_dim = config.model.G.w_dim = 8
  config.model.c_dim = 2
  g, d = build_models(config, backend='gpu')      # bf16 high-res blocks as on an accelerator
  assert g.mixed_precision_dtype == jnp.bfloat16 and g.architecture == 'skip'
  n = min(config.model.D.mbstd_group_size, 4)
  z, c = jnp.ones((n, 8)), jnp.ones((n, 2))
  g_vars = jax.eval_shape(lambda: g.init({'params': jax.random.key(0),
                                          'noise': jax.random.key(1)}, z, c))
  assert len(g_vars['params']['mapping']) == config.model.G.mapping_layers + 1   # + embed
  assert f'b{res}' in g_vars['params']['synthesis']
  imgs = jax.eval_shape(lambda v: g.apply(v, z, c, rngs={'noise': jax.random.key(2)}), g_vars)
  assert imgs.shape == (n, res, res, 3) and imgs.dtype == jnp.float32
  d_vars = jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((n, res, res, 3)), c,
                                         jnp.ones((n,), jnp.int32)))
  assert set(d_vars['params']) == {f'b{r}' for r in [2 ** i for i in
                                                     range(2, int(np.log2(res)) + 1)]} | {
                                                         'mapping'}
  logits = jax.eval_shape(lambda v: d.apply(v, jnp.zeros((n, res, res, 3)), c,
                                            jnp.ones((n,), jnp.int32)), d_vars)
  assert logits.shape == (n, 1) and logits.dtype == jnp.float32


def test_full_cifar_preset_counts_and_forward():
  config = config_for('cifar', 32)
  g, d = build_models(config)
  z, c = jnp.ones((2, 512)), jnp.zeros((2, 0))
  g_vars = jax.jit(g.init)({'params': jax.random.key(0), 'noise': jax.random.key(1)}, z, c)
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  assert count(g_vars['params']) == 19_947_539
  img = jax.jit(lambda v: g.apply(v, z, c, noise_mode='const'))(g_vars)
  assert img.shape == (2, 32, 32, 3) and bool(jnp.isfinite(img).all())
  d_vars = jax.jit(d.init)(jax.random.key(0), img, c, jnp.zeros(2, jnp.int32))
  assert count(d_vars['params']) == 23_085_056
  logits = jax.jit(lambda v: d.apply(v, img, c, jnp.asarray([0, 300])))(d_vars)
  assert logits.shape == (2, 1) and bool(jnp.isfinite(logits).all())


def test_build_models_requires_a_preset():
  config = base.get_base_config()
  with pytest.raises(ValueError, match='apply_preset'):
    build_models(config)


def test_summary_cli_prints_reference_counts():
  out = subprocess.run([sys.executable, '-m', 'dgan_jax.models.summary',
                        '--config=configs/cifar10.py'], capture_output=True, text=True,
                       check=True, env={'JAX_PLATFORMS': 'cpu', 'PATH': '/usr/bin:/bin',
                                        'PYTHONPATH': '.'}).stdout
  lines = out.strip().splitlines()
  assert lines[-2:] == ['G params: 19947539', 'D params: 23085056']
  assert 'synthesis/b32/conv0/affine/weight' in out and 'mapping/embed/weight' in out
