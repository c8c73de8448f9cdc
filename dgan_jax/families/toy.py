"""The 25-Gaussians toy as a model family: 2-D MLPs, synthetic data, mode-coverage report."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from dgan_jax import paths, run_files, toy
from dgan_jax.families.base import Family, size_problems
from dgan_jax.networks import Networks

T_EMBEDDINGS = ('scaled', 'sinusoidal')


class ToyFamily(Family):
  name = 'toy'

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    m = config.model
    problems = size_problems(m, ('width', 'z_dim'), 'model.') + size_problems(
        m, ('depth',), 'model.', minimum=0)
    kind = m.get('t_embedding', 'scaled')
    if kind not in T_EMBEDDINGS:
      problems.append(f'model.t_embedding={kind!r} is unknown for the toy; use one of '
                      f'{T_EMBEDDINGS}.')
    return problems

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    m = config.model
    return Networks(
        G=toy.ToyGenerator(width=m.width, depth=m.depth),
        D=toy.ToyDiscriminator(width=m.width, depth=m.depth, t_max=config.diffusion.t_max,
                               t_embedding=m.get('t_embedding', 'scaled')),
        z_dim=m.z_dim, c_dim=0, sample_shape=(2,))

  def data_iterator(self, config: ml_collections.ConfigDict, start_step: int):
    return toy.data_batches(config.seed, config.train.batch_size, start_step,
                            jax.process_index(), jax.process_count())

  def final_report(self, config, nets: Networks, state, workdir: paths.PathLike, writer):
    """Samples of G_ema, the mode coverage, and the paper's figure 5 panels."""
    n = 10_000
    z = jax.random.normal(jax.random.key(config.seed + 1), (n, nets.z_dim))
    c = jnp.zeros((n, 0), jnp.float32)
    samples, _ = jax.jit(lambda p, b: nets.generate(p, b, z, c, jax.random.key(0)))(
        state.g_ema_params, state.g_buffers)
    samples = np.asarray(samples, np.float32)
    with (workdir / 'samples.npy').open('wb') as f:   # local or gs:// (dgan_jax/paths.py)
      np.save(f, samples)
    cov = toy.mode_coverage(samples)
    data = toy.sample_data(np.random.default_rng(config.seed), n)

    def d_fn(x):
      logits, _ = nets.discriminate(state.d_params, state.d_buffers, x, c[:x.shape[0]],
                                    jnp.zeros((x.shape[0],), jnp.int32))
      return logits[:, 0]
    label = 'Diffusion-GAN' if config.diffusion.enabled else 'vanilla GAN'
    toy.plot_report(workdir / 'toy25.png', data, samples, jax.jit(d_fn),
                    f'{label}: {cov["modes_covered"]}/25 modes, '
                    f'{100 * cov["high_quality_fraction"]:.1f}% high-quality samples')
    results = {'modes_covered': cov['modes_covered'],
               'high_quality_fraction': cov['high_quality_fraction'],
               'final_T': int(state.diffusion.T), 'final_p': float(state.diffusion.p)}
    run_files.write_json(workdir / 'results.json', results, indent=2)   # atomic
    writer.write_scalars(int(state.step), {
        'eval/modes_covered': results['modes_covered'],
        'eval/high_quality_fraction': results['high_quality_fraction']})
    logging.info('Toy results: %s', results)
    print(f'[{label}] modes covered: {cov["modes_covered"]}/25, high-quality samples: '
          f'{100 * cov["high_quality_fraction"]:.1f}%  -> {workdir}', flush=True)


FAMILY = ToyFamily()
