"""FID / KID / IS / precision-recall against closed forms and direct computations."""
import numpy as np
import pytest

from dgan_jax.metrics import formulas

import metrics_torch_refs as refs


def _random_spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_diagonal_gaussians_is_closed_form():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
  s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))  # 10 + 4 + 1 + 0
  assert expected == pytest.approx(15.0)
  assert formulas.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(15.0)


def test_fid_of_commuting_full_covariances():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  l1, l2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
  s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
  mu = rng.normal(size=5)
  expected = np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)  # Tr(S1 + S2 - 2 (S1 S2)^1/2), same mu.
  assert formulas.frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-9)
  assert formulas.frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-9)


def test_fid_from_samples_approaches_closed_form():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200_000, 2)) * [1.0, 2.0]
  y = rng.normal(size=(200_000, 2)) * [3.0, 2.0] + [1.0, 0.0]
  fid = formulas.frechet_distance(*formulas.mean_cov(x), *formulas.mean_cov(y))
  assert fid == pytest.approx(1.0 + (1 - 3) ** 2, abs=0.05)  # 5.0


def test_fid_equals_pytorch_fid():
  refs.import_torchvision()
  fid_score = pytest.importorskip('pytorch_fid.fid_score')
  rng = np.random.default_rng(2)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  s1, s2 = _random_spd(rng, 16), _random_spd(rng, 16)
  ours = formulas.frechet_distance(mu1, s1, mu2, s2)
  theirs = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
  assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-10)


def test_moments_are_float64_biased_and_streamable():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(1000, 8)).astype(np.float32) + 5.0
  mu, sigma = formulas.mean_cov(x)
  np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, bias=True),
                             rtol=1e-9, atol=1e-12)
  acc = formulas.MomentAccumulator(8)
  for part in np.array_split(x, 7):
    acc.update(part)
  mu2, sigma2 = acc.mean_cov()
  np.testing.assert_allclose(mu2, mu, rtol=1e-12)
  np.testing.assert_allclose(sigma2, sigma, rtol=1e-9, atol=1e-12)
  with pytest.raises(ValueError, match='expected features'):
    acc.update(np.zeros((2, 3)))


def _mmd2_unbiased(x, y):
  n = x.shape[1]
  k = lambda a, b: (a @ b.T / n + 1) ** 3
  m = x.shape[0]
  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  off = lambda a: (a.sum() - np.trace(a)) / (m * (m - 1))
  return off(kxx) + off(kyy) - 2 * kxy.mean()


def test_kid_equals_unbiased_mmd_when_the_subset_is_everything():
  rng = np.random.default_rng(4)
  real, gen = rng.normal(size=(200, 6)), rng.normal(size=(200, 6)) + 1.0
  kid = formulas.kernel_inception_distance(real, gen, num_subsets=3, max_subset_size=1000)
  assert kid == pytest.approx(_mmd2_unbiased(gen, real), rel=1e-10)
  assert kid > 0


def test_kid_is_near_zero_for_one_distribution_and_grows_with_shift():
  rng = np.random.default_rng(5)
  real = rng.normal(size=(3000, 10))
  same = formulas.kernel_inception_distance(real, rng.normal(size=(3000, 10)), 20, 500)
  shifted = formulas.kernel_inception_distance(real, rng.normal(size=(3000, 10)) + 0.5, 20, 500)
  assert abs(same) < 0.01 < shifted


def test_inception_score_of_confident_balanced_and_constant_predictions():
  c = 8
  logits = np.full((800, c), -60.0)
  logits[np.arange(800), np.arange(800) % c] = 60.0  # One-hot, every split has each class once per 8.
  mean, std = formulas.inception_score(logits, num_splits=10)
  assert mean == pytest.approx(c, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
  mean, _ = formulas.inception_score(np.tile(np.arange(c, dtype=float), (100, 1)), 10)
  assert mean == pytest.approx(1.0, abs=1e-9)


def test_precision_recall_hand_example():
  real = np.arange(10, dtype=np.float32)[:, None]  # k=1 radius of every real point: 1.
  gen = np.array([[0.5], [100.0]], np.float32)     # k=1 radius of both generated points: 99.5.
  precision, recall = formulas.precision_recall(real, gen, k=1)
  assert precision == pytest.approx(0.5)
  assert recall == pytest.approx(1.0)


def _pr_bruteforce(real, gen, k):
  d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
  rr, gg = np.sort(d(real, real), 1)[:, k], np.sort(d(gen, gen), 1)[:, k]
  precision = np.mean((d(gen, real) <= rr[None]).any(1))
  recall = np.mean((d(real, gen) <= gg[None]).any(1))
  return precision, recall


def test_precision_recall_matches_bruteforce_with_row_batches():
  rng = np.random.default_rng(6)
  real = rng.normal(size=(300, 5)).astype(np.float32)
  gen = (rng.normal(size=(250, 5)) * 1.5 + 0.5).astype(np.float32)
  ours = formulas.precision_recall(real, gen, k=3, row_batch=64)
  want = _pr_bruteforce(real.astype(np.float64), gen.astype(np.float64), 3)
  assert ours == pytest.approx(want, abs=1e-6)
  assert 0.05 < ours[0] < 0.95 and 0.05 < ours[1] < 0.99
  assert formulas.precision_recall(real, real, k=3) == pytest.approx((1.0, 1.0))
