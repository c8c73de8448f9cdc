"""Training throughput of Diffusion-StyleGAN2 (cifar preset), or of another config, on the current backend.

Prints images/s, seconds per kimg and peak memory for the full training step (G main, D main, the
lazy R1 step every 16 iterations amortised when the config has R1, the controller update every
`ada_interval`), at each batch size. Data are random uint8 images already on the devices, so the
figures measure the step, not the input pipeline (see benchmarks/data_throughput.py for that).

  python benchmarks/train_throughput.py                       # batch 32 and 64, cifar preset
  python benchmarks/train_throughput.py --batch 32 --steps 5 --precision bfloat16
  python benchmarks/train_throughput.py --batch 32 --augment ada   # ADA's share of a step
  python benchmarks/train_throughput.py --config=configs/cifar10_projected.py --variant=small \
      --batch 16                                              # Diffusion-ProjectedGAN (random backbone)

`--config` is a config file and `--variant` its variant (configs/cifar10.py by default). A
projected config is measured with a random backbone (`model.projected.backbone='random'`: the
same cost as the pretrained one, and no weight file needed). Against the authors' code on the
same machine: benchmarks/vs_reference.py (`--family=projected` for this family).

With --augment ada|diffaug the step is measured with and without that augmentation (the ADA pipe
computes all its ops whatever p is, so its cost does not depend on p) and the share is printed.

Reference point on the 2-core development CPU: the authors' PyTorch code runs this preset at about
950 s/kimg at batch 32.
"""
import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # noqa: E402
import numpy as np  # noqa: E402

from dgan_jax import steps, train  # noqa: E402
from dgan_jax.data import device  # noqa: E402
from dgan_jax.families import build_networks  # noqa: E402
from study_step_time import load_config  # noqa: E402  (benchmarks/, first on sys.path)

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs',
                              'cifar10.py')


def peak_memory_gib() -> str:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return f'{stats["peak_bytes_in_use"] / 2**30:.2f} GiB device peak'
  return f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB host peak RSS'


def measure(batch: int, num_steps: int, precision: str, variant: str, augment: str | None = 'none',
            config_file: str = DEFAULT_CONFIG) -> dict:
  """Prints the figures of one setting and returns them (step_s: amortised seconds per step).
  `augment=None` keeps the config's augmentation."""
  config = load_config(f'{config_file}:{variant}')
  if augment is not None:
    config.augment.kind = augment
  config.diffusion.initial_p = 0.5    # ADA at its cap (0.25), as in a run past its start
  config.train.batch_size = batch
  config.train.batch_gpu = min(config.train.batch_gpu, batch)
  if 'projected' in config.model:
    config.model.projected.backbone = 'random'
  else:
    config.model.mixed_precision = precision
  mesh = steps.make_mesh()
  nets = build_networks(config)
  g_tx, d_tx = train.make_optimizers(config)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(lambda: train.create_train_state(config, nets, g_tx, d_tx),
                  out_shardings=replicated)()
  rng = np.random.default_rng(0)
  res = config.data.resolution
  batch_data = device.to_global(
      {'image': rng.integers(0, 256, (batch, res, res, 3), dtype=np.uint8),
       'label': np.zeros((batch, 0), np.float32)}, device.batch_sharding(mesh))
  update = steps.make_controller_update(config, mesh)
  times = {}
  r1_variants = (False, True) if config.loss.r1_gamma > 0 else (False,)
  for do_r1 in r1_variants:
    fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases(r1=do_r1))
    t0 = time.perf_counter()
    state, _ = fn(state, batch_data)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(num_steps):
      state, _ = fn(state, batch_data)
    jax.block_until_ready(state)
    times[do_r1] = ((time.perf_counter() - t0) / num_steps, compile_s)
  state = update(state)
  t0 = time.perf_counter()
  for _ in range(num_steps):
    state = update(state)
  jax.block_until_ready(state)
  ctrl_s = (time.perf_counter() - t0) / num_steps
  interval = config.loss.r1_interval
  every = steps.controller_interval(config)
  step_s = times[False][0] + (ctrl_s / every if every else 0.0)
  if True in times:
    step_s += (times[True][0] - times[False][0]) / interval
  r1 = f'R1 step {times[True][0]:.3f}s, ' if True in times else 'no R1, '
  print(f'batch {batch:3d} ({precision}, augment {config.augment.kind}, {jax.default_backend()}, '
        f'{mesh.size} device(s)): '
        f'{batch / step_s:8.2f} images/s | {1000 / (batch / step_s):8.1f} s/kimg | '
        f'step {times[False][0]:.3f}s, {r1}controller {ctrl_s * 1e3:.2f} ms every {every} | '
        f'compile {" + ".join(f"{t[1]:.0f}s" for t in times.values())} | {peak_memory_gib()}',
        flush=True)
  return {'batch': batch, 'precision': precision, 'augment': config.augment.kind,
          'devices': mesh.size, 'step_s': step_s, 'images_per_s': batch / step_s,
          's_per_kimg': 1000 * step_s / batch, 'main_step_s': times[False][0],
          'r1_step_s': times.get(True, (None,))[0], 'controller_s': ctrl_s,
          'compile_s': sum(t[1] for t in times.values()), 'memory': peak_memory_gib()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, nargs='+', default=[32, 64])
  parser.add_argument('--steps', type=int, default=3, help='timed steps per variant')
  parser.add_argument('--precision', default='auto', help='auto | float32 | bfloat16 | float16')
  parser.add_argument('--config', default=DEFAULT_CONFIG, help='config file (default: the cifar preset)')
  parser.add_argument('--variant', default='', help="config variant, e.g. 'small'")
  parser.add_argument('--augment', default='none', choices=['none', 'ada', 'diffaug'],
                      help='also measure with this augmentation and print its share of a step')
  args = parser.parse_args()
  if not os.path.isfile(args.config):
    parser.error(f'--config={args.config}: no such file (e.g. configs/cifar10_projected.py)')
  print(f'JAX {jax.__version__}, devices: {jax.devices()}')
  # The cifar preset is measured without augmentation unless asked; other configs with theirs
  # (the projected family's DiffAugment is part of its D).
  plain_augment = 'none' if os.path.samefile(args.config, DEFAULT_CONFIG) else None
  for batch in args.batch:
    plain = measure(batch, args.steps, args.precision, args.variant, plain_augment,
                    args.config)['step_s']
    if args.augment != 'none':
      augmented = measure(batch, args.steps, args.precision, args.variant, args.augment,
                          args.config)['step_s']
      print(f'batch {batch:3d}: {args.augment} adds {100 * (augmented / plain - 1):.1f}% to a step '
            f'({augmented:.3f} s vs {plain:.3f} s)', flush=True)


if __name__ == '__main__':
  main()
