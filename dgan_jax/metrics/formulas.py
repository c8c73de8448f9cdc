"""Metric formulas on extracted features, as stylegan2-ada-pytorch's `metrics/` computes them.

* FID: float64 raw moments, biased covariance (E[xx^T] - mu mu^T), then
  |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 Re sqrtm(S_g S_r)) with no epsilon regularisation.
* KID: `num_subsets` draws of m = min(n_real, n_gen, max_subset_size) features from each side
  (without replacement), cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, unbiased MMD^2.
* IS: softmax of the bias-free logits, `num_splits` consecutive splits, exp(mean KL(p(y|x) || p(y))).
* Precision/recall (Kynkaanniemi et al. 2019): k-NN radii of each manifold (the (k+1)-th smallest
  distance, which skips the point itself); precision = share of generated features inside some
  real ball, recall = share of real features inside some generated ball.
"""
import numpy as np
import scipy.linalg

import jax
import jax.numpy as jnp


class MomentAccumulator:
  """Running float64 sums of x and x x^T: mean and biased covariance without storing features."""

  def __init__(self, dim: int):
    self.count = 0
    self._sum = np.zeros(dim, np.float64)
    self._outer = np.zeros((dim, dim), np.float64)

  def update(self, features: np.ndarray) -> None:
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[1] != self._sum.shape[0]:
      raise ValueError(f'expected features [N, {self._sum.shape[0]}], got {x.shape}')
    self.count += x.shape[0]
    self._sum += x.sum(axis=0)
    self._outer += x.T @ x

  def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
    if self.count == 0:
      raise ValueError('no features were accumulated')
    mu = self._sum / self.count
    return mu, self._outer / self.count - np.outer(mu, mu)


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and biased (/N) covariance in float64, as the reference's FeatureStats."""
  acc = MomentAccumulator(np.shape(features)[1])
  acc.update(features)
  return acc.mean_cov()


_SCIPY_DISP = tuple(int(v) for v in scipy.__version__.split('.')[:2]) < (1, 16)


def _sqrtm(a: np.ndarray) -> np.ndarray:
  """scipy.linalg.sqrtm; older scipy needs disp=False (the reference's call), newer deprecates it."""
  if _SCIPY_DISP:
    return scipy.linalg.sqrtm(a, disp=False)[0]
  return scipy.linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 Re sqrtm(S1 S2)), in float64, no epsilon."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f'statistics shapes differ: mu {mu1.shape} vs {mu2.shape}, '
                     f'sigma {sigma1.shape} vs {sigma2.shape} (different feature networks?)')
  m = np.square(mu1 - mu2).sum()
  s = _sqrtm(sigma1 @ sigma2)
  return float(np.real(m + np.trace(sigma1 + sigma2 - 2.0 * s)))


def kernel_inception_distance(real: np.ndarray, gen: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
  """KID (unbiased MMD^2, cubic polynomial kernel) averaged over random subsets."""
  real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
  n = real.shape[1]
  m = min(real.shape[0], gen.shape[0], max_subset_size)
  if m < 2:
    raise ValueError(f'KID needs at least 2 features per side, got {real.shape[0]}, {gen.shape[0]}')
  rng = np.random.default_rng(seed)
  t = 0.0
  for _ in range(num_subsets):
    x = gen[rng.choice(gen.shape[0], m, replace=False)]
    y = real[rng.choice(real.shape[0], m, replace=False)]
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
  return float(t / num_subsets / m)


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
  """(mean, std) over splits of exp(E_x KL(p(y|x) || p(y))); `logits` without the output bias."""
  logits = np.asarray(logits, np.float64)
  logits = logits - logits.max(axis=1, keepdims=True)
  probs = np.exp(logits)
  probs /= probs.sum(axis=1, keepdims=True)
  n = probs.shape[0]
  if n < num_splits:
    raise ValueError(f'Inception Score needs at least {num_splits} samples, got {n}')
  scores = []
  for i in range(num_splits):
    part = probs[i * n // num_splits:(i + 1) * n // num_splits]
    kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
    scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
  return float(np.mean(scores)), float(np.std(scores))


@jax.jit
def _pairwise_dist(rows: jax.Array, cols: jax.Array) -> jax.Array:
  """Euclidean distances [R, C] in float32 (|a|^2 + |b|^2 - 2ab, clamped at 0)."""
  hp = jax.lax.Precision.HIGHEST
  d2 = (jnp.sum(rows * rows, 1)[:, None] + jnp.sum(cols * cols, 1)[None, :]
        - 2.0 * jnp.dot(rows, cols.T, precision=hp))
  return jnp.sqrt(jnp.clip(d2, min=0.0))


def _kth_radii(manifold: jax.Array, k: int, row_batch: int) -> jax.Array:
  """Distance of each manifold point to its k-th nearest other point ((k+1)-th incl. itself)."""
  radii = []
  for i in range(0, manifold.shape[0], row_batch):
    d = _pairwise_dist(manifold[i:i + row_batch], manifold)
    radii.append(-jax.lax.top_k(-d, k + 1)[0][:, k])
  return jnp.concatenate(radii)


def _coverage(probes: jax.Array, manifold: jax.Array, radii: jax.Array, row_batch: int) -> float:
  inside = []
  for i in range(0, probes.shape[0], row_batch):
    d = _pairwise_dist(probes[i:i + row_batch], manifold)
    inside.append(jnp.any(d <= radii[None, :], axis=1))
  return float(jnp.mean(jnp.concatenate(inside).astype(jnp.float32)))


def precision_recall(real: np.ndarray, gen: np.ndarray, k: int = 3,
                     row_batch: int = 1024) -> tuple[float, float]:
  """Improved precision and recall with k-nearest-neighbour manifolds (distances in float32)."""
  real = jnp.asarray(real, jnp.float32)
  gen = jnp.asarray(gen, jnp.float32)
  if min(real.shape[0], gen.shape[0]) <= k:
    raise ValueError(f'precision/recall with k={k} needs more than {k} features per side, got '
                     f'{real.shape[0]} real and {gen.shape[0]} generated')
  precision = _coverage(gen, real, _kth_radii(real, k, row_batch), row_batch)
  recall = _coverage(real, gen, _kth_radii(gen, k, row_batch), row_batch)
  return precision, recall
