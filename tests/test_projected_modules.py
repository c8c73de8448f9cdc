"""Projected-GAN modules: configuration and call contracts (errors before compiling, the frozen
collection, the diffusion switch), independent of the reference."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import base
from dgan_jax.models import efficientnet_lite
from dgan_jax.models.projected import config as pconfig
from dgan_jax.models.projected import projector
from dgan_jax.models.projected.discriminator import ProjectedDiscriminator, mini_disc_layout


def _config(name='fastgan', res=32, **overrides):
  config = base.get_base_config()
  config.data.resolution = res
  config.model.projected = pconfig.projected_settings(name)
  config.model.projected.update(overrides)
  config.model.c_dim = 0
  pconfig.apply_feature_diffusion(config.diffusion)
  return config


def test_builders_follow_the_reference_cfgs():
  G = pconfig.build_generator(_config('fastgan_lite'))
  assert (G.lite, G.z_dim, G.ngf, G.img_resolution) == (True, 256, 128, 32)
  G2 = pconfig.build_generator(_config('stylegan2', 256))
  assert (G2.z_dim, G2.w_dim, G2.mapping_layers, G2.w_avg_beta, G2.conv_clamp) == (
      64, 128, 2, 0.998, 256.0)
  D = pconfig.build_discriminator(_config('stylegan2', 256))
  assert D.separable and not D.interp224            # 256 >= 224: no resize (reference)
  D = pconfig.build_discriminator(_config('fastgan', 64))
  assert not D.separable and D.interp224 and D.d_pos == 'first'
  assert D.diffusion.t_per_channel and D.diffusion.epl_nonzero_rule == 'level'
  config = _config()
  config.diffusion.enabled = False
  assert pconfig.build_discriminator(config).diffusion is None


@pytest.mark.parametrize('overrides,message', [
    (dict(cfg='bigan'), "cfg='bigan' is unknown"),
    (dict(d_pos='middle'), "d_pos='middle' is unknown"),
    (dict(d_pos='last', proj_type=1), "d_pos='last' diffuses the cross-scale-mixed features"),
    (dict(proj_type=3), 'proj_type=3 is invalid'),
    (dict(cond=True), 'cond=True needs labels'),
    (dict(backbone='imagenet'), "backbone='imagenet' is unknown"),
])
def test_bad_settings_are_named(overrides, message):
  with pytest.raises(ValueError) as err:
    pconfig.build_discriminator(_config(**overrides))
  assert message in str(err.value)


def test_unknown_cfg_in_the_settings_factory():
  with pytest.raises(ValueError, match="Unknown projected cfg 'bigan'"):
    pconfig.projected_settings('bigan')


def test_bad_data_settings_are_named():
  with pytest.raises(ValueError, match='img_resolution in'):
    pconfig.build_generator(_config(res=16))
  config = _config()
  config.data.channels = 1
  with pytest.raises(ValueError, match='needs RGB'):
    pconfig.build_discriminator(config)


def test_backbone_variables_random_or_a_named_missing_file(tmp_path, monkeypatch):
  from dgan_jax.metrics import weights as weights_io  # pylint: disable=import-outside-toplevel
  assert pconfig.backbone_variables(_config(backbone='random')) is None
  monkeypatch.setenv(weights_io.ENV_DIR, str(tmp_path))
  with pytest.raises(FileNotFoundError) as err:
    pconfig.backbone_variables(_config())
  assert efficientnet_lite.URLS[0] in str(err.value) and str(tmp_path) in str(err.value)
  with pytest.raises(FileNotFoundError, match='does not exist'):
    pconfig.backbone_variables(_config(backbone_path=str(tmp_path / 'x.pth')))


def test_mini_disc_layout_matches_the_reference_table():
  # 128 -> 8 from 64 channels: the reference's widths 64, 128, 256, 512.
  assert mini_disc_layout(64, 128) == ([(64, 64), (64, 128), (128, 256), (256, 512)], 512)
  assert mini_disc_layout(256, 16) == ([(256, 512)], 512)
  assert mini_disc_layout(320, 8) == ([], 320)        # proj_type 0: the map is already at 8
  assert mini_disc_layout(40, 30) == ([(40, 256), (256, 512)], 512)   # snaps to 32


def test_mixers_are_frozen_with_torch_default_init_statistics():
  conv = projector.FrozenConv1x1(320, 512)
  variables = jax.jit(conv.init)(jax.random.key(0), jnp.zeros((1, 2, 2, 320)))
  assert set(variables) == {'frozen'}
  w = np.asarray(variables['frozen']['weight'])
  assert w.shape == (1, 1, 320, 512)
  bound = 1 / np.sqrt(320)
  assert np.abs(w).max() <= bound and np.std(w) == pytest.approx(bound / np.sqrt(3), rel=0.02)
  other = jax.jit(conv.init)(jax.random.key(1), jnp.zeros((1, 2, 2, 320)))
  assert not np.allclose(other['frozen']['weight'], w)   # drawn from the init key
  feats = [jnp.zeros((1, s, s, c)) for s, c in zip((8, 4, 2, 1),
                                                   efficientnet_lite.STAGE_CHANNELS)]
  mixers = projector.RandomMixers(proj_type=2)
  shapes = jax.eval_shape(mixers.init, jax.random.key(0), feats)
  assert set(shapes) == {'frozen'}
  out = jax.eval_shape(mixers.apply, shapes, feats)
  assert [o.shape for o in out] == [(1, 16, 16, 64), (1, 8, 8, 64), (1, 4, 4, 128),
                                    (1, 2, 2, 256)]


def test_install_backbone_replaces_only_the_backbone():
  D = ProjectedDiscriminator()
  shapes = jax.eval_shape(lambda: D.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  backbone = jax.tree.map(lambda s: np.ones(s.shape, s.dtype),
                          efficientnet_lite.variables_template())
  new = projector.install_backbone(variables, backbone)
  assert float(new['frozen']['feature_network']['pretrained']['conv_stem']['weight'].sum()) > 0
  assert float(new['frozen']['feature_network']['scratch']['layer0_ccm']['weight'].sum()) == 0
  del backbone['bn1']
  with pytest.raises(ValueError, match='missing'):
    projector.install_backbone(variables, backbone)


def _random_variables(shapes, seed=0):
  """Values for a variable-shape tree without compiling an init: N(0, 1/fan_in) weights,
  BatchNorm statistics 0 / 1, unit u / v."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = str(path[-1].key)
    if name == 'running_var':
      return np.ones(s.shape, s.dtype)
    if name in ('running_mean', 'num_batches_tracked', 'bias'):
      return np.zeros(s.shape, s.dtype)
    if name in ('weight_u', 'weight_v'):
      v = rng.standard_normal(s.shape)
      return (v / np.linalg.norm(v)).astype(s.dtype)
    if len(s.shape) <= 1:
      return np.ones(s.shape, s.dtype)
    return (rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(s.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def test_discriminator_call_contract():
  """One mini-D keeps the compile small. An all-zero t_epl and d_pos='none' give the logits of
  clean features; train=True needs the mutable collections."""
  diffusion = ml_collections.FrozenConfigDict(
      pconfig.apply_feature_diffusion(base.get_diffusion_config()))
  D = ProjectedDiscriminator(num_discs=1, diffusion=diffusion)
  none = ProjectedDiscriminator(num_discs=1, diffusion=diffusion, d_pos='none')
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  shapes = jax.eval_shape(D.init, jax.random.key(0), x)
  assert set(shapes) == {'params', 'batch_stats', 'spectral', 'frozen'}
  variables = _random_variables(shapes)
  key = jax.random.key(3)

  def run(module):
    return jax.jit(lambda v, t_epl, T: module.apply(v, x, None, t_epl, T, key, train=True,
                                                    mutable=['batch_stats', 'spectral'])[0])
  apply = run(D)
  zeros = apply(variables, jnp.zeros(64, jnp.int32), jnp.int32(100))
  noisy = apply(variables, jnp.full(64, 400, jnp.int32), jnp.int32(500))
  clean = run(none)(variables, jnp.full(64, 400, jnp.int32), jnp.int32(500))
  assert clean.shape == (2, 16)                        # 4x4 patches from 224x224
  np.testing.assert_allclose(zeros, clean, atol=1e-5)
  assert float(jnp.abs(noisy - clean).max()) > 1e-2
  with pytest.raises(Exception, match='batch_stats|spectral'):
    jax.jit(lambda v: D.apply(v, x, None, train=True))(variables)
  with pytest.raises(ValueError, match='without the diffusion key'):
    jax.eval_shape(lambda v: D.apply(v, x, None, jnp.zeros(64, jnp.int32), jnp.int32(10),
                                     train=False), variables)
  with pytest.raises(ValueError, match='3 channels'):
    jax.eval_shape(lambda v: D.apply(v, x[..., :1], None, train=False), variables)
  cond = ProjectedDiscriminator(num_discs=1, conditional=True, c_dim=4)
  with pytest.raises(ValueError, match=r'c must be \[N, 4\]'):
    jax.eval_shape(cond.init, jax.random.key(0), x, jnp.zeros((2, 3)))
