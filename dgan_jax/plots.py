"""Figures of a run that are not images: the adaptive diffusion's trajectory."""
from __future__ import annotations

from typing import Sequence

from dgan_jax import paths


def plot_trajectory(path: paths.PathLike, steps: Sequence[int], p: Sequence[float], T: Sequence[int],
                    r_d: Sequence[float], target: float) -> None:
  """Diffusion level p, T and r_d against training step."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
  axes[0].plot(steps, T)
  axes[0].set_ylabel('T')
  axes[1].plot(steps, p)
  axes[1].set_ylabel('diffusion level p')
  axes[2].plot(steps, r_d, lw=0.7)
  axes[2].axhline(target, color='k', ls='--', lw=0.8, label=f'target {target}')
  axes[2].set_ylabel('r_d')
  axes[2].set_xlabel('training step')
  axes[2].legend()
  fig.tight_layout()
  with paths.path(path).open('wb') as f:   # local or gs://
    fig.savefig(f, format='png', dpi=110)
  plt.close(fig)


def plot_score_gaps(path: paths.PathLike, curves: dict) -> None:
  """D's mean real minus fake logit against training step, one line per run: {label: (steps, gaps)}.

  A gap that keeps growing is D separating the training images from G's: overfitting on few data.
  """
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 3.5))
  for label, (steps, gaps) in curves.items():
    ax.plot(steps, gaps, lw=0.9, label=label)
  ax.axhline(0.0, color='k', lw=0.5)
  ax.set_xlabel('training step')
  ax.set_ylabel("D's real - fake logit")
  ax.legend()
  fig.tight_layout()
  with paths.path(path).open('wb') as f:   # local or gs://
    fig.savefig(f, format='png', dpi=110)
  plt.close(fig)
