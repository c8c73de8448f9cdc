"""Seconds per training step of the issue-13 study configs on this machine, to size the studies.

    python benchmarks/study_step_time.py [--steps=10] [SPEC ...]
    SPEC: config[:variant], e.g. configs/cifar10_dcgan.py:small  configs/cifar10.py:stylegan2,small

For each spec: the family's compiled step variants (SNGAN: with and without G main) run on random
uint8 images already on the devices (the input pipeline is not measured), with the controller
update where the config adapts something; every step variant is compiled first, then the seconds
per step are averaged over whole schedule periods (SNGAN: n_dis = 5 steps with one G update;
StyleGAN2: 16 steps with one lazy R1).
"""
import argparse
import importlib.util
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # noqa: E402
import numpy as np  # noqa: E402

from dgan_jax import families, steps, train  # noqa: E402
from dgan_jax.data import device  # noqa: E402

DEFAULT_SPECS = ('configs/cifar10_dcgan.py:small', 'configs/cifar10_dcgan.py:diffusion,small',
                 'configs/cifar10_sngan.py:small', 'configs/cifar10_sngan.py:diffusion,small',
                 'configs/cifar10.py:stylegan2,small', 'configs/cifar10.py:small')


def load_config(spec: str):
  path, _, variant = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


def measure(spec: str, num_steps: int) -> float:
  config = load_config(spec)
  family = families.get(config)
  mesh = steps.make_mesh()
  nets = family.build_networks(config)
  g_tx, d_tx = family.make_optimizers(config)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(lambda: family.init_state(config, nets, g_tx, d_tx), out_shardings=replicated)()
  train_step = family.make_steps(config, nets, mesh, g_tx, d_tx)
  every = steps.controller_interval(config)
  update = steps.make_controller_update(config, mesh) if every else None
  res, batch = config.data.resolution, config.train.batch_size
  data = device.to_global(
      {'image': np.random.default_rng(0).integers(0, 256, (batch, res, res, 3), dtype=np.uint8),
       'label': np.zeros((batch, 0), np.float32)}, device.batch_sharding(mesh))
  variants, select = steps.phase_schedule(config)
  period = next(i for i in range(1, 129)                        # the schedule's period
                if all(select(s) == select(s % i) for s in range(256)))
  first = sorted({min(s for s in range(period) if select(s) == v) for v in variants})
  start = time.perf_counter()
  for i in first:                              # compiles every variant once
    state, _ = train_step(i, state, data)
  if update:
    state = update(state)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  total = max(period, -(-num_steps // period) * period)
  start = time.perf_counter()
  for i in range(period, period + total):
    state, _ = train_step(i, state, data)
    if update and (i + 1) % every == 0:
      state = update(state)
  jax.block_until_ready(state)
  per_step = (time.perf_counter() - start) / total
  print(f'{spec}: width {config.model.get("width", "-")}, batch {batch}, schedule period '
        f'{period} ({len(variants)} step variants): {per_step:.3f} s/step over {total} steps '
        f'(compiling the variants: {compile_s:.0f} s)', flush=True)
  return per_step


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('specs', nargs='*', default=list(DEFAULT_SPECS))
  args = parser.parse_args()
  print(f'{jax.device_count()} {jax.default_backend()} device(s)', flush=True)
  for spec in args.specs:
    measure(spec, args.steps)


if __name__ == '__main__':
  main()
