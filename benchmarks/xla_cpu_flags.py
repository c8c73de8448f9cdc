"""What dgan_jax's XLA:CPU flag (dgan_jax/xla_cpu.py) changes: convolutions and training steps timed
in child processes with and without it.

    python benchmarks/xla_cpu_flags.py [--steps=configs/cifar10_projected.py:small] [--iters=3]

Settings (each a fresh process, since XLA reads XLA_FLAGS once per process):
  dgan_jax   what `import dgan_jax` sets: YNNPACK without convolutions
  ynnpack    XLA's default (DGAN_JAX_XLA_CPU_DEFAULTS=0): YNNPACK convolutions
  eigen      no YNNPACK fusions at all (--xla_cpu_experimental_ynn_fusion_type=)
Prints seconds (best of --iters calls after one warm-up) for three float32 convolutions, forward
only: a 3x3 with its padding inside the convolution ('same'), the same arithmetic on an input padded
beforehand ('valid', the form of models/conv.py's pieces), and a 1x1. `--steps` adds the training
step of each config spec (random images, one device, the input pipeline excluded) in s/kimg.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SETTINGS = {'dgan_jax': {}, 'ynnpack': {'DGAN_JAX_XLA_CPU_DEFAULTS': '0'},
            'eigen': {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type='}}
CONVS = {'3x3 same 16x32x32x512': ((16, 32, 32, 512), (3, 3, 512, 512), 1),
         '3x3 valid 16x34x34x512': ((16, 34, 34, 512), (3, 3, 512, 512), 0),
         '1x1 64x32x32x512': ((64, 32, 32, 512), (1, 1, 512, 512), 0)}


def best_of(fn, iters: int) -> float:
  fn()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def child(specs: list[str], iters: int) -> dict:
  """Runs in the child: times the convolutions and the steps under this process's flags."""
  sys.path.insert(0, str(REPO))
  sys.path.insert(0, str(REPO / 'benchmarks'))
  import dgan_jax  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  out = {'XLA_FLAGS': os.environ.get('XLA_FLAGS', '')}
  rng = np.random.default_rng(0)
  for name, (x_shape, w_shape, pad) in CONVS.items():
    x = jax.numpy.asarray(rng.standard_normal(x_shape, np.float32))
    w = jax.numpy.asarray(rng.standard_normal(w_shape, np.float32))
    conv = jax.jit(lambda x, w, pad=pad: jax.lax.conv_general_dilated(
        x, w, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    out[name] = best_of(lambda: conv(x, w).block_until_ready(), iters)
  if specs:
    import study_step_time  # pylint: disable=import-outside-toplevel
    import vs_reference  # pylint: disable=import-outside-toplevel
    for spec in specs:
      config = study_step_time.load_config(spec)
      iteration = vs_reference.ours(config)
      seconds = best_of(lambda: iteration(False), iters)
      out[f'step {spec} (s/kimg)'] = seconds / config.train.batch_size * 1000
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', action='append', default=[],
                      help='a config[:variant] spec whose training step to time (repeatable)')
  parser.add_argument('--iters', type=int, default=3)
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.iters < 1:
    raise SystemExit(f'--iters={args.iters} must be >= 1.')
  for spec in args.steps:
    if not pathlib.Path(spec.partition(':')[0]).is_file():
      raise SystemExit(f'--steps: {spec.partition(":")[0]} is not a config file (a path from '
                       'the current folder, e.g. configs/cifar10_projected.py:small).')
  if args.child:
    print(json.dumps(child(args.steps, args.iters)))
    return None
  results = {}
  for setting, env in SETTINGS.items():
    environ = {k: v for k, v in os.environ.items()
               if k not in ('XLA_FLAGS', 'DGAN_JAX_XLA_CPU_DEFAULTS')}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL='3')
    cmd = [sys.executable, __file__, '--child', f'--iters={args.iters}']
    cmd += [f'--steps={spec}' for spec in args.steps]
    done = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False)
    if done.returncode:
      raise SystemExit(f'the {setting!r} child failed:\n{done.stderr[-3000:]}')
    results[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f'{setting:9s} XLA_FLAGS={results[setting]["XLA_FLAGS"]!r}', flush=True)
  names = [k for k in results['dgan_jax'] if k != 'XLA_FLAGS']
  print(f'\n{"":34s}' + ''.join(f'{s:>11s}' for s in SETTINGS))
  for name in names:
    print(f'{name:34s}' + ''.join(f'{results[s][name]:11.3f}' for s in SETTINGS))
  return results


if __name__ == '__main__':
  main()
