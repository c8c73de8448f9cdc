"""Sharded extraction and the evaluate() entry point, end to end with tiny random networks."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgan_jax.metrics import evaluate as ev
from dgan_jax.metrics import formulas, stats_cache
from dgan_jax.metrics.extract import FeatureExtractor, FeatureNet, generated_batches, to_uint8

RES = 8


class TinyNet(nn.Module):
  """A stand-in feature network (the domain-feature option): conv, pool, dense."""
  dim: int = 12

  @nn.compact
  def __call__(self, images):
    x = images.astype(jnp.float32) / 127.5 - 1.0
    x = nn.relu(nn.Conv(8, (3, 3), strides=(2, 2))(x))
    feats = nn.Dense(self.dim)(jnp.mean(x, axis=(1, 2)))
    return {'features': feats, 'logits': nn.Dense(5)(feats)}


def tiny_feature_net(name, seed, dim=12):
  module = TinyNet(dim)
  variables = module.init(jax.random.key(seed), jnp.zeros((1, RES, RES, 3), jnp.uint8))
  return FeatureNet(name, module.apply, variables)


def fake_generator(key, n):
  """A 'generator' with a learnable-looking bias: images brighter than the reals."""
  x = jax.random.uniform(key, (n, RES, RES, 3), minval=-0.6, maxval=1.0)
  return to_uint8(x)


@pytest.fixture(scope='module')
def reals():
  return np.random.RandomState(0).randint(0, 256, (1100, RES, RES, 3)).astype(np.uint8)


def real_batches(reals, size=77):
  return lambda: (reals[i:i + size] for i in range(0, len(reals), size))


def test_sharded_extraction_matches_direct_apply_with_padding():
  net = tiny_feature_net('tiny', 0)
  extractor = FeatureExtractor(net, batch_size=20)  # Rounded up to 24 on 8 devices.
  assert extractor.batch_size == 24 and extractor.mesh.devices.size == 8
  images = np.random.RandomState(1).randint(0, 256, (61, RES, RES, 3)).astype(np.uint8)
  got = extractor.run([images[:10], images[10:45], images[45:]], num_items=None, progress=False)
  want = net.apply(net.variables, jnp.asarray(images))
  assert got['features'].shape == (61, 12)
  np.testing.assert_allclose(got['features'], np.asarray(want['features']), atol=1e-5)
  # max_items stops early, mid-batch.
  part = extractor.run([images], num_items=30, progress=False)
  np.testing.assert_allclose(part['features'], np.asarray(want['features'])[:30], atol=1e-5)


def test_to_uint8_truncates_like_the_reference():
  x = jnp.array([-2.0, -1.0, 0.0, 0.5 / 127.5 - 1e-6, 1.0, 3.0])
  np.testing.assert_array_equal(np.asarray(to_uint8(x)), [0, 0, 128, 128, 255, 255])
  assert to_uint8(jnp.array([-0.004])).item() == 127  # -0.51 + 128 -> 127 (truncation)


def test_parse_metric_names():
  s = ev.parse_metric('fid50k_full')
  assert (s.kind, s.num_gen, s.max_real, s.net) == ('fid', 50_000, None, 'inception')
  s = ev.parse_metric('kid50k_full')
  assert (s.max_real, s.net) == (1_000_000, 'inception')
  s = ev.parse_metric('pr50k3_full')
  assert (s.max_real, s.net, s.nhood) == (200_000, 'vgg16', 3)
  s = ev.parse_metric('is50k')
  assert (s.max_real, s.num_gen) == (0, 50_000)
  assert ev.parse_metric('fid2k').max_real == 2000
  assert ev.parse_metric('pr10k3_full-inception').net == 'inception'
  for name in ev.REGISTERED:
    ev.parse_metric(name)
  for bad in ('fid', 'fid50k3', 'is50k_full', 'pr50k', 'ppl2_wend', 'fid0k'):
    with pytest.raises(ValueError):
      ev.parse_metric(bad)
  assert ev.lower_is_better('fid50k_full') and not ev.lower_is_better('is50k_mean')
  assert not ev.lower_is_better('pr50k3_full_recall')


def _direct_features(net, images):
  return np.asarray(net.apply(net.variables, jnp.asarray(images))['features'])


def test_evaluate_end_to_end_and_cache(reals, tmp_path):
  nets = {'inception': tiny_feature_net('tiny-a', 1), 'vgg16': tiny_feature_net('tiny-b', 2, 16),
          'domain': tiny_feature_net('tiny-c', 3, 6)}
  key = jax.random.key(7)
  names = 'fid1k_full,kid1k_full,is1k,pr1k3_full,fid1k-domain'
  kw = dict(key=key, dataset_id='unit-test', resolution=RES, cache_dir=str(tmp_path),
            batch_size=64, progress=False, kid_subsets=5, kid_subset_size=200)
  res = ev.evaluate(names, fake_generator, real_batches(reals), nets, **kw)
  assert set(res) == {'fid1k_full', 'kid1k_full', 'is1k_mean', 'is1k_std',
                      'pr1k3_full_precision', 'pr1k3_full_recall', 'fid1k-domain'}
  assert all(np.isfinite(v) for v in res.values())

  # The same numbers straight from the formulas on unsharded features.
  gen = np.concatenate(list(generated_batches(fake_generator, key, 1000, 64)))
  assert gen.shape == (1000, RES, RES, 3)
  ra, ga = _direct_features(nets['inception'], reals), _direct_features(nets['inception'], gen)
  fid = formulas.frechet_distance(*formulas.mean_cov(ga), *formulas.mean_cov(ra))
  assert res['fid1k_full'] == pytest.approx(fid, rel=1e-4)
  assert res['fid1k_full'] > 1e-3  # Brighter fakes are measurably different.
  rd, gd = _direct_features(nets['domain'], reals[:1000]), _direct_features(nets['domain'], gen)
  assert res['fid1k-domain'] == pytest.approx(
      formulas.frechet_distance(*formulas.mean_cov(gd), *formulas.mean_cov(rd)), rel=1e-4)
  kid = formulas.kernel_inception_distance(ra, ga, num_subsets=5, max_subset_size=200)
  assert res['kid1k_full'] == pytest.approx(kid, rel=1e-4, abs=1e-7)
  rb, gb = _direct_features(nets['vgg16'], reals), _direct_features(nets['vgg16'], gen)
  assert (res['pr1k3_full_precision'], res['pr1k3_full_recall']) == pytest.approx(
      formulas.precision_recall(rb, gb, k=3), abs=2e-3)

  # Real statistics were cached under (dataset, resolution, count, network) keys ...
  key_all = stats_cache.cache_key('unit-test', RES, None, 'tiny-a')
  assert stats_cache.stats_path(tmp_path, key_all).exists()
  mu, sigma = stats_cache.load_stats(stats_cache.stats_path(tmp_path, key_all))
  np.testing.assert_allclose(mu, formulas.mean_cov(ra)[0], rtol=1e-5, atol=1e-6)
  assert stats_cache.features_path(
      tmp_path, stats_cache.cache_key('unit-test', RES, 200_000, 'tiny-b')).exists()
  # ... so a second evaluation needs no real images at all.
  again = ev.evaluate('fid1k_full,pr1k3_full', fake_generator, None, nets, **kw)
  assert again['fid1k_full'] == pytest.approx(res['fid1k_full'], rel=1e-9)
  assert again['pr1k3_full_recall'] == pytest.approx(res['pr1k3_full_recall'])


def test_published_stats_file_loads(tmp_path):
  path = tmp_path / 'fid_stats_cifar10_train.npz'
  np.savez(path, mu=np.arange(3.0), sigma=np.eye(3))  # pytorch-fid's file layout.
  mu, sigma = stats_cache.load_stats(path)
  assert mu.dtype == np.float64 and sigma.shape == (3, 3)
  np.savez(tmp_path / 'bad.npz', mean=np.arange(3.0))
  with pytest.raises(ValueError, match='mu'):
    stats_cache.load_stats(tmp_path / 'bad.npz')


def test_evaluate_rejects_bad_setups_before_running(reals):
  nets = {'inception': tiny_feature_net('tiny-a', 1)}
  kw = dict(key=jax.random.key(0), dataset_id='x', resolution=RES, progress=False)
  with pytest.raises(ValueError, match="'vgg16'"):
    ev.evaluate('pr1k3_full', fake_generator, real_batches(reals), nets, **kw)
  with pytest.raises(ValueError, match='unknown metric'):
    ev.evaluate('fid_50k', fake_generator, real_batches(reals), nets, **kw)
  no_logits = FeatureNet('nl', lambda v, x: {'features': x.reshape(x.shape[0], -1)[:, :4]
                                            .astype(jnp.float32)}, {})
  with pytest.raises(ValueError, match='logits'):
    ev.evaluate('is1k', fake_generator, None, {'inception': no_logits}, **kw)
  with pytest.raises(ValueError, match='uint8'):
    ev.evaluate('is1k', lambda k, n: np.zeros((n, RES, RES, 3), np.float32), None, nets, **kw)


def make_tiny_domain_net():
  """Factory used by the import-path test below."""
  return tiny_feature_net('tiny-domain', 4)


def test_domain_net_from_import_path_and_feature_nets_for(monkeypatch):
  import sys  # pylint: disable=import-outside-toplevel
  monkeypatch.setitem(sys.modules, 'tiny_domain_module', sys.modules[__name__])
  net = ev.feature_net_from_import_path('tiny_domain_module:make_tiny_domain_net')
  assert net.name == 'tiny-domain'
  nets = ev.feature_nets_for('fid2k_full-domain', domain_nets={'domain': net})
  assert list(nets) == ['domain']
  with pytest.raises(ValueError, match='module:factory'):
    ev.feature_net_from_import_path('no_colon')
  with pytest.raises(ValueError, match="'other'"):
    ev.feature_nets_for('fid2k-other')
