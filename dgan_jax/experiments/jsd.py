"""The paper's JSD example (Figure 2, appendix D): diffusion makes the JS divergence smooth in theta.

    python -m dgan_jax.experiments.jsd [--out=runs/jsd]

Real data p_r = (0, Z) and generated data p_g = (theta, Z), Z ~ U[0, 1]: two parallel segments in
the plane. Without noise they are disjoint for every theta != 0, so JSD(p_r, p_g) = log 2 jumps to 0
only at theta = 0 and gives the generator no gradient (Arjovsky et al. 2017). Diffusing both,

    y = sqrt(abar_t) x + sqrt(1 - abar_t) sigma eps,    eps ~ N(0, I_2),

gives densities on the whole plane, a Gaussian along y1 times a uniform segment convolved with a
Gaussian along y2 (closed form in erf):

    p(y) = N(y1; a c, s^2) * [Phi(y2 / s) - Phi((y2 - a) / s)] / a,   a = sqrt(abar_t),
    s = sigma sqrt(1 - abar_t), c = 0 (real) or theta (generated),

and JSD(q(y_t | real), q(y_t | generated)) grows smoothly from 0 with |theta|, flatter for larger t.

Schedule: linear betas 1e-4 -> 2e-2 over T = 1000 steps, sigma = 1 (the DDPM schedule, which is also
the reference's default `--beta_schedule linear`, `beta_start=1e-4`, `beta_end=2e-2`). The stored
copies of the paper text available here do not reach appendix D, so these values are our choice,
stated in docs/diffusion.md; `--beta-start`, `--beta-end`, `--T`, `--sigma` change them. abar_t comes
from `dgan_jax.diffusion.schedule` (the training code's table).

Integration: the JS integrand 0.5 [p log(2p / (p + q)) + q log(2q / (p + q))] is computed from log
densities on a uniform grid over the box [min(0, a theta) - L s, max(0, a theta) + L s] x
[-L s, a + L s] with the trapezoid rule, at steps h and h / 2 (h = s / 4). The stated error bound of
the finer value is |I_h - I_{h/2}| (the trapezoid rule on these analytic, Gaussian-smoothed integrands
converges faster than any power of h, so the coarse error bounds the fine one) + the tail bound
log 2 * 2 erfc(L / sqrt 2) (the integrand is between 0 and (p + q) log 2 / 2 pointwise, and each
density puts at most 2 erfc(L / sqrt 2) of its mass outside the box) + a float64 rounding bound.
Since both densities share the y2 factor, the JSD also equals the JSD of the two 1-D Gaussians
N(0, 1) and N(a theta / s, 1); that 1-D integral (scipy quad) is reported beside the plane's as an
independent check. t = 0 is degenerate (no densities on the plane): JSD = log 2 for theta != 0 and
0 at theta = 0, analytically.

The optimal discriminator D*(y) = p_r(y) / (p_r(y) + p_g(y)) depends on y1 only (the y2 factors
cancel); the figure shows it over the plane with the mixture density as contours.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
from typing import Sequence

import numpy as np
import scipy.integrate
import scipy.special

from dgan_jax import diffusion

T_VALUES = (0, 50, 100, 200, 400, 800)
D_STAR_THETAS = (0.2, 0.6)
LOG2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Setup:
  """The diffusion of the example: linear betas over T steps, noise scale sigma."""
  beta_start: float = 1e-4
  beta_end: float = 2e-2
  T: int = 1000
  sigma: float = 1.0
  box_sigmas: float = 8.0       # L: the box reaches L noise standard deviations past each segment.
  points_per_sigma: int = 4     # 1 / h in units of s for the coarse grid (the fine one doubles it).

  def coefficients(self, t: int) -> tuple[float, float]:
    """(a, s) = (sqrt(abar_t), sigma sqrt(1 - abar_t)) from the training code's schedule table."""
    if not 0 <= t <= self.T:
      raise ValueError(f't={t} is outside 0..T={self.T}')
    sqrt_abar, sqrt_1m = diffusion.schedule('linear', self.beta_start, self.beta_end, self.T, self.T)
    return float(np.asarray(sqrt_abar)[t]), self.sigma * abs(float(np.asarray(sqrt_1m)[t]))


def log_segment_density(y2: np.ndarray, a: float, s: float) -> np.ndarray:
  """log of [Phi(y2 / s) - Phi((y2 - a) / s)] / a: U[0, a] convolved with N(0, s^2), stably.

  The difference of normal CDFs is taken on the side where both are small (log_ndtr is exact
  in the tails), so the log stays finite far from the segment.
  """
  u, v = y2 / s, (y2 - a) / s       # u > v
  upper = v > 0                     # Both near 1: use Phi(-v) - Phi(-u) instead.
  hi = np.where(upper, scipy.special.log_ndtr(-v), scipy.special.log_ndtr(u))
  lo = np.where(upper, scipy.special.log_ndtr(-u), scipy.special.log_ndtr(v))
  return hi + np.log1p(-np.exp(lo - hi)) - math.log(a)


def log_gaussian(y1: np.ndarray, mean: float, s: float) -> np.ndarray:
  return -0.5 * ((y1 - mean) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))


def log_densities(y1: np.ndarray, y2: np.ndarray, theta: float, a: float, s: float):
  """(log p_r, log p_g) of the diffused segments at the points (y1, y2) (broadcast)."""
  seg = log_segment_density(y2, a, s)
  return log_gaussian(y1, 0.0, s) + seg, log_gaussian(y1, a * theta, s) + seg


def js_integrand(lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
  """0.5 [p log(2p / (p + q)) + q log(2q / (p + q))] from log densities (0 where both vanish)."""
  lm = np.logaddexp(lp, lq) - LOG2
  return 0.5 * (np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm))


def _trapezoid_weights(n: int, h: float) -> np.ndarray:
  w = np.full(n, h)
  w[[0, -1]] = h / 2
  return w


def plane_integral(theta: float, a: float, s: float, L: float, points_per_sigma: int
                   ) -> tuple[float, float]:
  """(JSD, rounding bound) by the 2-D trapezoid rule with step s / points_per_sigma on the box."""
  h = s / points_per_sigma
  lo1, hi1 = min(0.0, a * theta) - L * s, max(0.0, a * theta) + L * s
  lo2, hi2 = -L * s, a + L * s
  n1 = int(math.ceil((hi1 - lo1) / h)) + 1
  n2 = int(math.ceil((hi2 - lo2) / h)) + 1
  if n1 * n2 > 2e7:
    raise ValueError(f'grid of {n1}x{n2} points (t too small for this theta range); '
                     'lower --points-per-sigma or use larger t')
  y1 = np.linspace(lo1, hi1, n1)[:, None]
  y2 = np.linspace(lo2, hi2, n2)[None, :]
  h1, h2 = (hi1 - lo1) / (n1 - 1), (hi2 - lo2) / (n2 - 1)
  lp, lq = log_densities(y1, y2, theta, a, s)
  weights = _trapezoid_weights(n1, h1)[:, None] * _trapezoid_weights(n2, h2)[None, :]
  f = js_integrand(lp, lq)
  value = float((weights * f).sum())
  # Each term carries a few ulps of |p log p| + |q log q| + |(p + q) log m|; the sum adds N ulps.
  eps = np.finfo(np.float64).eps
  lm = np.logaddexp(lp, lq) - LOG2
  terms = np.exp(lp) * (np.abs(lp) + np.abs(lm) + 1) + np.exp(lq) * (np.abs(lq) + np.abs(lm) + 1)
  rounding = 8 * eps * float((weights * terms).sum()) + n1 * n2 * eps * abs(value)
  return value, rounding


def tail_bound(L: float) -> float:
  """Integrand mass outside the box: <= log 2 * (mass of each density outside) <= log 2 * 2 erfc."""
  return LOG2 * 2.0 * math.erfc(L / math.sqrt(2.0))


def jsd_on_plane(theta: float, t: int, setup: Setup) -> tuple[float, float]:
  """(JSD, error bound) of the diffused segments at step t (t = 0: exact, bound 0)."""
  if t == 0:
    return (LOG2 if theta != 0 else 0.0), 0.0
  a, s = setup.coefficients(t)
  coarse, _ = plane_integral(theta, a, s, setup.box_sigmas, setup.points_per_sigma)
  fine, rounding = plane_integral(theta, a, s, setup.box_sigmas, 2 * setup.points_per_sigma)
  return fine, abs(fine - coarse) + tail_bound(setup.box_sigmas) + rounding


def jsd_gaussians_1d(d: float) -> float:
  """JSD(N(0, 1), N(d, 1)) by adaptive quadrature: the plane's JSD with d = a theta / s."""
  if d == 0:
    return 0.0
  def f(u):
    lp, lq = np.array([-0.5 * u * u]), np.array([-0.5 * (u - d) ** 2])
    return float(js_integrand(lp, lq)[0]) / math.sqrt(2 * math.pi)
  lo, hi = min(0.0, d) - 40.0, max(0.0, d) + 40.0
  value, _ = scipy.integrate.quad(f, lo, hi, points=sorted({0.0, d / 2, d}), limit=200,
                                  epsabs=1e-15, epsrel=1e-13)
  return value


def optimal_discriminator(y1: np.ndarray, y2: np.ndarray, theta: float, t: int, setup: Setup
                          ) -> np.ndarray:
  """D*(y) = p_r / (p_r + p_g) for t > 0 (a sigmoid of the log-density ratio)."""
  if t == 0:
    raise ValueError('D* is defined only on the two segments at t = 0 (no densities on the plane)')
  a, s = setup.coefficients(t)
  lp, lq = log_densities(y1, y2, theta, a, s)
  return scipy.special.expit(lp - lq)


def compute(thetas: Sequence[float], t_values: Sequence[int] = T_VALUES, setup: Setup = Setup(),
            d_star_thetas: Sequence[float] = D_STAR_THETAS) -> dict:
  """Every number of the figure as a JSON-ready dict."""
  thetas = [float(x) for x in thetas]
  out = {'setup': dataclasses.asdict(setup), 'theta': thetas, 't': list(t_values),
         'sqrt_abar': {}, 'noise_std': {}, 'jsd': {}, 'error_bound': {}, 'jsd_1d': {},
         'max_slope': {}}
  for t in t_values:
    a, s = setup.coefficients(t)
    values, bounds = zip(*(jsd_on_plane(th, t, setup) for th in thetas))
    key = str(t)
    out['sqrt_abar'][key], out['noise_std'][key] = a, s
    out['jsd'][key], out['error_bound'][key] = list(values), list(bounds)
    if t > 0:
      out['jsd_1d'][key] = [jsd_gaussians_1d(a * th / s) for th in thetas]
      out['max_slope'][key] = float(np.max(np.abs(np.diff(values) / np.diff(thetas))))
  y1 = np.linspace(-1.5, 2.5, 161)
  out['d_star'] = {'y1': y1.tolist(), 'theta': list(d_star_thetas),
                   'note': 'D*(y) depends on y1 only; values along y1 (any y2), t > 0.',
                   'values': {str(t): [optimal_discriminator(y1, np.full_like(y1, 0.5), th, t,
                                                             setup).tolist()
                                       for th in d_star_thetas]
                              for t in t_values if t > 0}}
  return out


def plot(path: pathlib.Path, results: dict, setup: Setup) -> None:
  """Figure 2: JSD against theta for each t (top), D* over the plane for a few theta (below)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  t_values, thetas = results['t'], results['d_star']['theta']
  fig = plt.figure(figsize=(2.4 * len(t_values), 3.2 + 2.3 * len(thetas)))
  grid = fig.add_gridspec(1 + len(thetas), len(t_values), height_ratios=[1.4] + [1] * len(thetas))
  ax = fig.add_subplot(grid[0, :])
  for t in t_values:
    ax.plot(results['theta'], results['jsd'][str(t)], label=f't = {t}', lw=1.4,
            drawstyle='steps-mid' if t == 0 else 'default')
  ax.axhline(LOG2, color='k', lw=0.6, ls=':')
  ax.set_xlabel('theta')
  ax.set_ylabel('JSD(p_r, p_g) at step t')
  ax.set_title(f'JS divergence of diffused (0, Z) and (theta, Z), Z ~ U[0, 1] (linear betas '
               f'{setup.beta_start:g}..{setup.beta_end:g}, T = {setup.T}, sigma = {setup.sigma:g})')
  ax.legend(ncol=len(t_values), fontsize=8)
  lim1, lim2 = (-1.5, 2.5), (-1.5, 2.5)
  y1 = np.linspace(*lim1, 200)
  y2 = np.linspace(*lim2, 200)
  yy1, yy2 = np.meshgrid(y1, y2)
  for row, theta in enumerate(thetas, start=1):
    for col, t in enumerate(t_values):
      ax = fig.add_subplot(grid[row, col])
      if t == 0:
        ax.set_facecolor('0.85')
        ax.plot([0, 0], [0, 1], color=plt.cm.coolwarm(1.0), lw=3)
        ax.plot([theta, theta], [0, 1], color=plt.cm.coolwarm(0.0), lw=3)
        ax.text(0.5, 0.05, 'D* only on the segments', transform=ax.transAxes, ha='center', fontsize=7)
      else:
        d = optimal_discriminator(yy1, yy2, theta, t, setup)
        ax.imshow(d, origin='lower', extent=(*lim1, *lim2), cmap='coolwarm', vmin=0, vmax=1,
                  aspect='auto')
        a, s = setup.coefficients(t)
        lp, lq = log_densities(yy1, yy2, theta, a, s)
        ax.contour(yy1, yy2, 0.5 * (np.exp(lp) + np.exp(lq)), levels=4, colors='k',
                   linewidths=0.5)
      ax.set_xlim(*lim1)
      ax.set_ylim(*lim2)
      ax.tick_params(labelsize=7)
      if row == 1:
        ax.set_title(f't = {t}', fontsize=9)
      if col == 0:
        ax.set_ylabel(f'D*, theta = {theta:g}\ny2', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m dgan_jax.experiments.jsd', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--out', default='runs/jsd', help='folder for jsd_figure2.png and jsd.json')
  parser.add_argument('--theta-max', type=float, default=1.0)
  parser.add_argument('--num-theta', type=int, default=201, help='odd, so theta = 0 is included')
  parser.add_argument('--t', default=','.join(map(str, T_VALUES)), help='comma list of steps')
  parser.add_argument('--beta-start', type=float, default=Setup.beta_start)
  parser.add_argument('--beta-end', type=float, default=Setup.beta_end)
  parser.add_argument('--T', type=int, default=Setup.T)
  parser.add_argument('--sigma', type=float, default=Setup.sigma)
  args = parser.parse_args(argv)
  setup = Setup(args.beta_start, args.beta_end, args.T, args.sigma)
  thetas = np.linspace(-args.theta_max, args.theta_max, args.num_theta)
  results = compute(thetas, [int(t) for t in args.t.split(',')], setup)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / 'jsd.json').write_text(json.dumps(results, indent=1))
  plot(out / 'jsd_figure2.png', results, setup)
  for t in results['t']:
    key = str(t)
    print(f't={t:4d}: sqrt(abar)={results["sqrt_abar"][key]:.4f} noise std='
          f'{results["noise_std"][key]:.4f} JSD(theta={thetas[-1]:g})={results["jsd"][key][-1]:.6f} '
          f'max error bound {max(results["error_bound"][key]):.1e}'
          + (f' max slope {results["max_slope"][key]:.4f}' if key in results['max_slope'] else ''))
  print(f'wrote {out / "jsd.json"} and {out / "jsd_figure2.png"}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
