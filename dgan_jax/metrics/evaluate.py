"""Metric registry and the `evaluate` entry point the training loop and `--mode=eval` call.

Metric names follow stylegan2-ada-pytorch (`metrics/metric_main.py`), with any image count:

  fid{N}k_full    all real images vs N*1000 generated            (fid50k_full: the paper's FID)
  fid{N}k         <= N*1000 real vs N*1000 generated             (legacy fid50k; fid10k, fid2k: quick)
  kid{N}k_full    <= 1M real vs N*1000 generated; 100 subsets of <= 1000; cubic kernel
  kid{N}k         <= N*1000 real
  pr{N}k{K}_full  <= 200k real vs N*1000 generated; VGG16 features; K nearest neighbours
  pr{N}k{K}       <= N*1000 real
  is{N}k          N*1000 generated; 10 splits; Inception logits without output bias

A suffix `-<net>` computes the same formula on another feature network from `feature_nets`:
`fid50k_full-domain` is a Frechet distance on the 'domain' network's features (the domain-feature
option), `pr50k3_full-inception` is precision/recall on Inception features (not the paper's PR).

  fd{N}k[_full]-<net>   the FID formula on a non-Inception network (the suffix is required):
                        fd10k-clf is 10k generated vs <= 10k real on the CIFAR-10 classifier
                        of metrics/classifier.py (an offline proxy; docs/metrics.md)

The network 'clf' is loaded from `clf_path` or the metrics weights folder unless `domain_nets`
names another.
"""
import dataclasses
import logging
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax import errors
from dgan_jax.metrics import formulas
from dgan_jax.metrics import stats_cache
from dgan_jax.metrics.extract import FeatureExtractor, FeatureNet, generated_batches

DEFAULT_NET = {'fid': 'inception', 'kid': 'inception', 'is': 'inception', 'pr': 'vgg16'}
FULL_MAX_REAL = {'fid': None, 'kid': 1_000_000, 'pr': 200_000}
# The names the reference registers, plus the quick variants used during short runs.
REGISTERED = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'is50k', 'fid50k', 'kid50k', 'pr50k3',
              'fid10k_full', 'fid10k', 'fid2k_full', 'fid2k', 'kid10k_full', 'is10k', 'pr10k3_full')
_NAME_RE = re.compile(r'^(?P<kind>fid|fd|kid|is|pr)(?P<n>\d+)k(?P<k>\d+)?(?P<full>_full)?'
                      r'(?:-(?P<net>[A-Za-z0-9_]+))?$')


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  """One parsed metric: formula, counts, and which feature network it uses."""
  name: str
  kind: str              # The formula: fid (also for fd names), kid, is or pr.
  num_gen: int
  max_real: int | None   # None: every real image; 0: no real images needed (IS).
  net: str               # Key into the `feature_nets` mapping.
  nhood: int = 3         # k of precision/recall.

  @property
  def needs_real(self) -> bool:
    return self.max_real != 0


def parse_metric(name: str) -> MetricSpec:
  """'fid50k_full' -> MetricSpec(kind='fid', num_gen=50000, max_real=None, net='inception')."""
  m = _NAME_RE.match(name.strip())
  if not m:
    raise errors.UserError(f'unknown metric {name!r}: expected e.g. {", ".join(REGISTERED[:4])} or the '
                           'pattern fid|kid{N}k[_full], pr{N}k{K}[_full], is{N}k, optional -<net>, '
                           'or fd{N}k[_full]-<net> (e.g. fd10k-clf).')
  kind, n = m['kind'], int(m['n']) * 1000
  if kind == 'fd':
    if m['net'] in (None, 'inception'):
      raise errors.UserError(f'{name}: fd (Frechet distance) names a non-Inception feature network, '
                           f'e.g. fd{m["n"]}k-clf; on Inception features it is the FID, '
                           f'fid{m["n"]}k{m["full"] or ""}.')
    kind = 'fid'
  if n == 0:
    raise errors.UserError(f'{name}: the generated-image count must be positive')
  if (kind == 'pr') != (m['k'] is not None):
    raise errors.UserError(f'{name}: only precision/recall takes a neighbourhood size (pr50k3_full)')
  if kind == 'is' and m['full']:
    raise errors.UserError(f'{name}: the Inception Score uses no real images; write is{m["n"]}k')
  if kind == 'is':
    max_real = 0
  elif m['full']:
    max_real = FULL_MAX_REAL[kind]
  else:
    max_real = n
  return MetricSpec(name.strip(), kind, n, max_real, m['net'] or DEFAULT_NET[kind],
                    int(m['k']) if m['k'] else 3)


def lower_is_better(name: str) -> bool:
  """FID and KID improve downwards; IS, precision and recall upwards (for best-checkpoint logic)."""
  return parse_metric(name.split('_precision')[0].split('_recall')[0]
                      .replace('_mean', '').replace('_std', '')).kind in ('fid', 'kid')


def combine(nets: Mapping[str, FeatureNet]) -> FeatureNet:
  """One FeatureNet running several networks on the same batch: outputs keyed '<role>/<output>'."""
  roles = sorted(nets)

  def apply(variables, images):
    out = {}
    for role in roles:
      for k, v in nets[role].apply(variables[role], images).items():
        out[f'{role}/{k}'] = v
    return out
  return FeatureNet('+'.join(nets[r].name for r in roles), apply,
                    {r: nets[r].variables for r in roles})


class _Moments:
  """Feeds the first `limit` rows of one output into a float64 moment accumulator."""

  def __init__(self, key: str, limit: int | None):
    self.key, self.limit, self.acc = key, limit, None

  def __call__(self, feats: Mapping[str, np.ndarray]) -> None:
    x = feats[self.key]
    if self.limit is not None:
      x = x[:max(0, self.limit - (self.acc.count if self.acc else 0))]
    if x.shape[0]:
      self.acc = self.acc or formulas.MomentAccumulator(x.shape[1])
      self.acc.update(x)


class _Keep:
  """Keeps the first `limit` rows of one output."""

  def __init__(self, key: str, limit: int | None):
    self.key, self.limit, self.parts, self.count = key, limit, [], 0

  def __call__(self, feats: Mapping[str, np.ndarray]) -> None:
    x = feats[self.key]
    if self.limit is not None:
      x = x[:max(0, self.limit - self.count)]
    if x.shape[0]:
      self.parts.append(x)
      self.count += x.shape[0]

  def value(self) -> np.ndarray:
    return np.concatenate(self.parts)


def _check_nets(specs: Sequence[MetricSpec], feature_nets: Mapping[str, FeatureNet],
                resolution: int, channels: int) -> None:
  """Every metric's network exists and has the outputs its formula needs (traced, not compiled)."""
  for spec in specs:
    if spec.net not in feature_nets:
      raise ValueError(
          f'{spec.name} needs the feature network {spec.net!r}, but feature_nets has '
          f'{sorted(feature_nets)}. Pass e.g. {{"inception": inception.feature_net(), '
          f'"vgg16": vgg16.feature_net()}} (weights: docs/metrics.md).')
  for role in sorted({s.net for s in specs}):
    net = feature_nets[role]
    shapes = jax.eval_shape(net.apply, net.variables,
                            jax.ShapeDtypeStruct((1, resolution, resolution, channels), jnp.uint8))
    if 'features' not in shapes:
      raise ValueError(f'feature network {role!r} ({net.name}) must return a "features" output; '
                       f'it returns {sorted(shapes)}')
    if any(s.kind == 'is' and s.net == role for s in specs) and 'logits' not in shapes:
      raise ValueError(f'the Inception Score needs "logits" from {role!r} ({net.name}), '
                       f'which returns only {sorted(shapes)}')


def evaluate(metric_names: str | Iterable[str],
             generate_fn: Callable[[jax.Array, int], Any],
             real_images: Callable[[], Iterable[np.ndarray]] | Iterable[np.ndarray] | None,
             feature_nets: Mapping[str, FeatureNet],
             *,
             key: jax.Array,
             dataset_id: str,
             resolution: int,
             channels: int = 3,
             cache_dir: str | None = None,
             batch_size: int = 256,
             mesh=None,
             progress: bool = True,
             kid_subsets: int = 100,
             kid_subset_size: int = 1000) -> dict[str, float]:
  """Computes the named metrics for a generator; returns {result name: value}.

  generate_fn: `(key, n) -> uint8 NHWC [n, resolution, resolution, channels]` (e.g. G_ema with
    random z, converted by `extract.to_uint8`); called with `fold_in(key, i)` for batch i.
  real_images: a zero-argument callable returning an iterator of uint8 NHWC batches in dataset
    order (no x-flips for *_full), or a re-iterable sequence of batches. Not touched when every
    real statistic needed is already in `cache_dir`.
  feature_nets: role -> FeatureNet ('inception', 'vgg16', or any domain network name).
  dataset_id, resolution: the cache key of the real statistics (with count and network name).

  Results use the reference's names: fid50k_full, kid50k_full, is50k_mean, is50k_std,
  pr50k3_full_precision, pr50k3_full_recall (with the -<net> suffix when given).
  """
  if isinstance(metric_names, str):
    metric_names = [n for n in metric_names.split(',') if n.strip()]
  specs = [parse_metric(n) for n in metric_names]
  if not specs:
    raise errors.UserError('no metrics requested (e.g. "fid50k_full")')
  _check_nets(specs, feature_nets, resolution, channels)

  real = _real_statistics(specs, real_images, feature_nets, dataset_id, resolution, cache_dir,
                          batch_size, mesh, progress)
  gen = _generated_statistics(specs, generate_fn, key, feature_nets, batch_size, mesh, progress)

  results: dict[str, float] = {}
  for s in specs:
    if s.kind == 'fid':
      mu_r, sigma_r = real[('stats', s.net, s.max_real)]
      mu_g, sigma_g = gen[('stats', s.net, s.num_gen)]
      results[s.name] = formulas.frechet_distance(mu_g, sigma_g, mu_r, sigma_r)
    elif s.kind == 'kid':
      results[s.name] = formulas.kernel_inception_distance(
          real[('features', s.net, s.max_real)], gen[('features', s.net)][:s.num_gen],
          num_subsets=kid_subsets, max_subset_size=kid_subset_size)
    elif s.kind == 'is':
      mean, std = formulas.inception_score(gen[('logits', s.net)][:s.num_gen])
      base, suffix = _split_suffix(s.name)
      results[f'{base}_mean{suffix}'], results[f'{base}_std{suffix}'] = mean, std
    elif s.kind == 'pr':
      precision, recall = formulas.precision_recall(
          real[('features', s.net, s.max_real)], gen[('features', s.net)][:s.num_gen], k=s.nhood)
      base, suffix = _split_suffix(s.name)
      results[f'{base}_precision{suffix}'], results[f'{base}_recall{suffix}'] = precision, recall
  return results


def _split_suffix(name: str) -> tuple[str, str]:
  base, sep, net = name.partition('-')
  return base, sep + net


def _real_statistics(specs, real_images, feature_nets, dataset_id, resolution, cache_dir,
                     batch_size, mesh, progress) -> dict:
  """Loads from the cache or computes every real statistic the metrics need, in one pass."""
  needs = set()
  for s in specs:
    if s.needs_real:
      needs.add(('stats' if s.kind == 'fid' else 'features', s.net, s.max_real))
  found, missing = {}, []
  for need in sorted(needs, key=str):
    kind, role, count = need
    path = _cache_file(cache_dir, kind, dataset_id, resolution, count, feature_nets[role].name)
    if path is not None and path.exists():
      found[need] = (stats_cache.load_stats(path) if kind == 'stats'
                     else stats_cache.load_features(path))
      logging.info('real %s for %s loaded from %s', kind, role, path)
    else:
      missing.append(need)
  if jax.process_count() > 1:  # All processes must agree, or the collectives below would hang.
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    ordered = sorted(needs, key=str)
    flags = np.array([need in missing for need in ordered])
    anywhere = np.asarray(multihost_utils.process_allgather(flags)).reshape(-1, len(ordered))
    missing = [need for need, m in zip(ordered, anywhere.any(axis=0)) if m]
    for need in missing:
      found.pop(need, None)
  if not missing:
    return found
  if real_images is None:
    raise errors.UserError(f'real images are needed for {missing} (not in cache_dir={cache_dir})')
  roles = sorted({role for _, role, _ in missing})
  consumers = {}
  for need in missing:
    kind, role, count = need
    cls = _Moments if kind == 'stats' else _Keep
    consumers[need] = cls(f'{role}/features', count)
  counts = [count for _, _, count in missing]
  total = None if None in counts else max(counts)
  extractor = FeatureExtractor(combine({r: feature_nets[r] for r in roles}), batch_size, mesh)
  batches = real_images() if callable(real_images) else real_images
  extractor.run(batches, total, progress, desc='real images', consumers=consumers.values())
  for need, consumer in consumers.items():
    kind, role, count = need
    if kind == 'stats':
      if consumer.acc is None:
        raise ValueError('the real image stream was empty')
      mu, sigma = consumer.acc.mean_cov()
      found[need] = (mu, sigma)
      n = consumer.acc.count
    else:
      found[need] = consumer.value()
      n = found[need].shape[0]
    path = _cache_file(cache_dir, kind, dataset_id, resolution, count, feature_nets[role].name)
    if path is not None and jax.process_index() == 0:
      if kind == 'stats':
        stats_cache.save_stats(path, mu, sigma, n)
      else:
        stats_cache.save_features(path, found[need])
  return found


def _cache_file(cache_dir, kind, dataset_id, resolution, count, net_name):
  if cache_dir is None:
    return None
  key = stats_cache.cache_key(dataset_id, resolution, count, net_name)
  return (stats_cache.stats_path(cache_dir, key) if kind == 'stats'
          else stats_cache.features_path(cache_dir, key))


def _generated_statistics(specs, generate_fn, key, feature_nets, batch_size, mesh,
                          progress) -> dict:
  """Generates max(num_gen) images once and feeds every network's consumers from that one pass."""
  consumers = {}
  for s in specs:
    if s.kind == 'fid':
      consumers[('stats', s.net, s.num_gen)] = _Moments(f'{s.net}/features', s.num_gen)
    else:
      output = 'logits' if s.kind == 'is' else 'features'
      need = (output, s.net)
      limit = max(t.num_gen for t in specs if t.net == s.net and t.kind != 'fid')
      consumers.setdefault(need, _Keep(f'{s.net}/{output}', limit))
  roles = sorted({s.net for s in specs})
  total = max(s.num_gen for s in specs)
  extractor = FeatureExtractor(combine({r: feature_nets[r] for r in roles}), batch_size, mesh)
  extractor.run(generated_batches(generate_fn, key, total, extractor.batch_size), total,
                progress, desc='generated images', consumers=consumers.values())
  out = {}
  for need, consumer in consumers.items():
    if need[0] == 'stats':
      out[need] = consumer.acc.mean_cov()
    else:
      out[need] = consumer.value()
  return out


def feature_net_from_import_path(spec: str) -> FeatureNet:
  """'package.module:factory' -> factory(), which must return a FeatureNet (domain features).

  This is how a config names a domain feature network (e.g. config.eval.domain_net).
  """
  import importlib  # pylint: disable=import-outside-toplevel
  module_name, sep, attr = spec.partition(':')
  if not sep or not module_name or not attr:
    raise errors.UserError(f'domain feature network {spec!r}: expected "package.module:factory"')
  net = getattr(importlib.import_module(module_name), attr)()
  if not isinstance(net, FeatureNet):
    raise TypeError(f'{spec} returned {type(net).__name__}; it must return '
                    'dgan_jax.metrics.extract.FeatureNet(name, apply, variables)')
  return net


def feature_nets_for(metric_names: str | Iterable[str], inception_path=None, vgg16_path=None,
                     domain_nets: Mapping[str, str | FeatureNet] | None = None,
                     clf_path=None) -> dict[str, FeatureNet]:
  """Loads only the networks the metrics need: Inception for fid/kid/is, VGG16 for pr, the
  CIFAR-10 classifier for `-clf` (from `clf_path` or the weights folder), and any other
  `-<name>` networks from `domain_nets` (FeatureNets or 'module:factory' import paths)."""
  from dgan_jax.metrics import classifier, inception, vgg16  # pylint: disable=import-outside-toplevel
  if isinstance(metric_names, str):
    metric_names = [n for n in metric_names.split(',') if n.strip()]
  roles = {parse_metric(n).net for n in metric_names}
  nets: dict[str, FeatureNet] = {}
  domain_nets = dict(domain_nets or {})
  for role in sorted(roles):
    if role in domain_nets:
      given = domain_nets[role]
      nets[role] = feature_net_from_import_path(given) if isinstance(given, str) else given
    elif role == 'inception':
      nets[role] = inception.feature_net(inception_path)
    elif role == 'vgg16':
      nets[role] = vgg16.feature_net(vgg16_path)
    elif role == classifier.ROLE:
      nets[role] = classifier.feature_net(clf_path)
    else:
      raise errors.UserError(f'no feature network named {role!r}: pass it in domain_nets')
  return nets
