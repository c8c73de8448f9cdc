"""The paper's 25-Gaussians example: data, MLP networks, mode coverage and the report figures.

Data: an equal-weight mixture of 25 isotropic Gaussians with centres on {-4, -2, 0, 2, 4}^2 and standard
deviation 0.05. Networks (paper section 4.2): generator and discriminator are MLPs with two hidden
layers of 128 units and LeakyReLU; the discriminator also takes the diffusion timestep t.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dgan_jax import paths
from dgan_jax.models import layers
from dgan_jax.models.discriminator import timestep_features

GRID = (-4.0, -2.0, 0.0, 2.0, 4.0)
CENTRES = np.array([(x, y) for x in GRID for y in GRID], np.float32)
STD = 0.05


def sample_data(rng: np.random.Generator, n: int) -> np.ndarray:
  """n float32 points from the 25-Gaussians mixture."""
  modes = rng.integers(0, len(CENTRES), size=n)
  return (CENTRES[modes] + STD * rng.standard_normal((n, 2))).astype(np.float32)


def data_batches(seed: int, global_batch: int, start_step: int = 0, process_index: int = 0,
                 process_count: int = 1):
  """Infinite iterator of this host's {'image': [B, 2], 'label': [B, 0]}, B = global / processes.

  Global batch k depends only on (seed, k); each host yields its contiguous slice, so the global
  batch is the same for any number of hosts.
  """
  local = global_batch // process_count
  step = start_step
  while True:
    points = sample_data(np.random.default_rng([seed, step]), global_batch)
    points = points[process_index * local:(process_index + 1) * local]
    yield {'image': points, 'label': np.zeros((local, 0), np.float32)}
    step += 1


def mode_coverage(samples: np.ndarray, num_std: float = 3.0, min_fraction: float = 0.01) -> dict:
  """Mode statistics: a mode is covered when >= min_fraction of the samples lie within num_std
  standard deviations of its centre; `high_quality` is the fraction within num_std of some centre."""
  d = np.linalg.norm(samples[:, None, :] - CENTRES[None, :, :], axis=-1)
  near = d < num_std * STD
  per_mode = near.sum(axis=0) / len(samples)
  return {
      'modes_covered': int((per_mode >= min_fraction).sum()),
      'high_quality_fraction': float(near.any(axis=1).mean()),
      'per_mode_fraction': per_mode,
  }


class MLP(nn.Module):
  """Hidden layers of `width` units with LeakyReLU (slope 0.2), then a linear output."""
  width: int = 128
  depth: int = 2
  out_dim: int = 2

  @nn.compact
  def __call__(self, x):
    for i in range(self.depth):
      x = layers.leaky_relu(nn.Dense(self.width, name=f'fc{i}')(x), 0.2)
    return nn.Dense(self.out_dim, name='out')(x)


class ToyGenerator(nn.Module):
  """z -> 2-D point. The label input is accepted for interface parity and ignored."""
  width: int = 128
  depth: int = 2

  @nn.compact
  def __call__(self, z, c=None):
    return MLP(self.width, self.depth, 2, name='net')(z)


class ToyDiscriminator(nn.Module):
  """(x, t) -> logit, with features of t concatenated to x (t = 0 is a clean sample).

  t_embedding: 'scaled' (t / t_max; the raw t of the image discriminator, up to 1000, would swamp
  an MLP with default initialisation) or 'sinusoidal' (t_embed_dim sin/cos features, which also
  tell apart the small t of a run whose T stays near T_min; see timestep_features).
  """
  width: int = 128
  depth: int = 2
  t_max: int = 1000
  t_embedding: str = 'scaled'
  t_embed_dim: int = 16

  @nn.compact
  def __call__(self, x, c=None, t=None):
    t = jnp.zeros((x.shape[0],), jnp.int32) if t is None else t
    features = timestep_features(t, self.t_embedding, self.t_max, self.t_embed_dim)
    h = jnp.concatenate([x, features.astype(x.dtype)], axis=-1)
    return MLP(self.width, self.depth, 1, name='net')(h)


# ---------------------------------------------------------------------------------------------------
# Figures.


def plot_report(path: paths.PathLike, data: np.ndarray, samples: np.ndarray, d_fn, title: str) -> None:
  """Paper figure 5 style: data, generated samples, and D(x, t = 0) over the plane."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  lim = 5.5
  fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
  axes[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.4, c='tab:blue')
  axes[0].set_title('data (25 Gaussians)')
  axes[1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, c='tab:red')
  axes[1].scatter(CENTRES[:, 0], CENTRES[:, 1], s=12, marker='x', c='k')
  axes[1].set_title('generated samples')
  g = np.linspace(-lim, lim, 200, dtype=np.float32)
  xx, yy = np.meshgrid(g, g)
  grid = np.stack([xx.ravel(), yy.ravel()], axis=-1)
  logits = np.asarray(d_fn(grid)).reshape(xx.shape)
  im = axes[2].imshow(1 / (1 + np.exp(-logits)), origin='lower', extent=(-lim, lim, -lim, lim),
                      cmap='viridis', vmin=0, vmax=1)
  fig.colorbar(im, ax=axes[2], fraction=0.046)
  axes[2].set_title('D(x, t=0) (sigmoid)')
  for ax in axes:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
  fig.suptitle(title)
  fig.tight_layout()
  with paths.path(path).open('wb') as f:   # local or gs://
    fig.savefig(f, format='png', dpi=110)
  plt.close(fig)
