"""The accelerator check: one JSON of what a GPU/TPU machine does with dgan_jax (run by
benchmarks/device_check.sh, which also copies the data; read that script's header).

Sections, each written to the JSON as soon as it is measured (a section that fails records its
error and the next one runs; a time limit still leaves the finished ones):
  devices     backend, device kinds and count, JAX version;
  vs_reference_projected, vs_reference_stylegan2
              benchmarks/vs_reference.py in this process: ours against the authors' PyTorch code
              (on the GPU when there is one), the paper's projected config at batch 64 and the full
              cifar preset at batch 32, float32 both sides: s/kimg each and the ratio; needs torch,
              timm and the reference (device_check.sh passes a tar of it, see there);
  train_*     benchmarks/train_throughput.py's full cifar step at batch 64 and 32, mixed (auto)
              and float32 (images/s, s/kimg, compile time, memory), one section each; the mixed
              batch-64 one first, the others last (each compiles two programs);
  models      benchmarks/model_throughput.py: G and D forward images/s, cifar preset, batch 64;
  inception   FID feature extraction images/s (random Inception weights: the speed does not depend
              on them) and the time of 50k images extrapolated from it;
  cifar_run   a real training run (python -m dgan_jax.main, cifar preset, the zip) stopped after
              `--run-seconds` by SIGTERM (which saves a checkpoint): last step, kimg, T, p, r_d and
              images/s from its second progress line to its last (past the first compiles);
  goals       the targets on one H200: >= 2,000 images/s for the cifar step in mixed precision,
              50k Inception images in under 60 s.
`--quick` runs every section at tiny sizes (the tests' smoke widths, one training setting at batch
8, a few images, a short smoke run) to check the script itself on a CPU (about 10 minutes on a
busy 2-core CPU, nearly all of it compiling).
"""
import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'benchmarks'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # noqa: E402
import numpy as np  # noqa: E402

PROGRESS = re.compile(r'^step (\d+)/\d+ kimg ([\d.]+) \| T (\d+) p ([\d.]+) r_d ([+-][\d.]+) \|')


class Report:
  """The JSON file, rewritten after every section."""

  def __init__(self, path: pathlib.Path, quick: bool):
    self.path, self.data = path, {'quick': quick, 'started': time.strftime('%Y-%m-%d %H:%M:%S')}
    self.t0 = time.time()

  def section(self, name: str, fn, *args):
    print(f'--- {name}', flush=True)
    t0 = time.time()
    try:
      self.data[name] = fn(*args)
    except Exception as e:  # pylint: disable=broad-except  (record it; the next section runs)
      traceback.print_exc()
      self.data[name] = {'error': f'{type(e).__name__}: {e}'[:2000]}
    self.data.setdefault('seconds', {})[name] = round(time.time() - t0, 1)
    self.write()

  def write(self):
    self.data['total_s'] = round(time.time() - self.t0, 1)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.path.write_text(json.dumps(self.data, indent=1, default=str) + '\n')


def devices() -> dict:
  devs = jax.devices()
  return {'backend': jax.default_backend(), 'count': len(devs), 'kinds': sorted({d.device_kind for d in devs}),
          'processes': jax.process_count(), 'jax': jax.__version__,
          'memory_gib': [round((d.memory_stats() or {}).get('bytes_limit', 0) / 2**30, 1) for d in devs]}


def train(quick: bool, precision: str, batch: int) -> dict:
  import train_throughput  # pylint: disable=import-outside-toplevel
  if quick:   # The tests' smoke widths at batch 8: compiling alone takes minutes on a CPU.
    return train_throughput.measure(8, 2, precision, 'smoke')
  return train_throughput.measure(batch, 10, precision, '')


def models(quick: bool) -> dict:
  import model_throughput  # pylint: disable=import-outside-toplevel
  return model_throughput.measure(batch=16 if quick else 64, iters=2 if quick else 10, smoke=quick)


def side_by_side(quick: bool, family: str) -> dict:
  """benchmarks/vs_reference.py: ours against the authors' PyTorch code in this process, the
  reference on the GPU when JAX has one (float32 both; the full preset / paper config)."""
  import vs_reference  # pylint: disable=import-outside-toplevel
  torch_device = 'cuda' if jax.default_backend() == 'gpu' else 'cpu'
  argv = [f'--family={family}', f'--torch-device={torch_device}']
  if quick:
    # The smallest variants each family's comparison accepts (stylegan2's needs the lazy R1).
    argv += [f'--variant={"smoke" if family == "projected" else "small"}', '--batch=2',
             '--rounds=1', '--steps=1']
  else:
    argv += ['--variant=', '--rounds=3', '--steps=5']
  try:
    return vs_reference.main(argv)
  except SystemExit as e:   # a missing mirror or timm: recorded as this section's error
    raise RuntimeError(f'vs_reference {" ".join(argv)}: {e}') from None


def inception(quick: bool) -> dict:
  import fid_throughput  # pylint: disable=import-outside-toplevel
  batch, count = (16, 32) if quick else (500, 10_000)
  images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
  run, info = fid_throughput.make_ours(batch, images)
  times = []
  for _ in range(1 if quick else 3):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
  rate = count / float(np.median(times))
  return {'setup': info, 'images': count, 'weights': 'random', 'images_per_s': rate,
          'seconds_50k': 50_000 / rate, 'seconds_50k_note': f'extrapolated from {count} images'}


def cifar_run(zip_path: str, seconds: float, quick: bool, workdir: pathlib.Path) -> dict:
  """Trains the cifar preset from the zip for `seconds` (compile included), then SIGTERM."""
  if not os.path.exists(zip_path):
    raise FileNotFoundError(f'{zip_path} is missing: device_check.sh copies the CIFAR-10 zip there '
                            '(--data=PATH).')
  config = 'configs/cifar10.py:smoke' if quick else 'configs/cifar10.py'
  args = [sys.executable, '-m', 'dgan_jax.main', f'--config={config}', f'--workdir={workdir}',
          f'--config.data.path={os.path.abspath(zip_path)}', '--config.train.total_kimg=100000',
          f'--config.train.log_every_steps={1 if quick else 50}',
          '--config.train.sample_every_kimg=100000', '--config.train.checkpoint_every_kimg=100000',
          '--config.eval.metrics=']
  t0 = time.time()
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))))
  lines = []   # (arrival time, line)

  def echo():   # Keeps the output (and shows it) while the main thread watches the clock.
    for line in proc.stdout:
      lines.append((time.time(), line.rstrip('\n')))
      print(line, end='', flush=True)
  reader = threading.Thread(target=echo, daemon=True)
  reader.start()
  try:
    proc.wait(timeout=seconds)
  except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGTERM)    # dgan_jax saves a checkpoint and exits
    try:
      proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
  finally:
    if proc.poll() is None:   # this script was stopped: do not leave the run behind
      proc.kill()
  reader.join(timeout=10)
  progress = [(t, m) for t, m in ((t, PROGRESS.match(line)) for t, line in lines) if m]
  if not progress:
    raise RuntimeError('no progress line in the run\'s output (exit code '
                       f'{proc.returncode}); its last lines: {[l for _, l in lines[-5:]]}')
  from configs import cifar10 as cifar_config  # pylint: disable=import-outside-toplevel
  batch = cifar_config.get_config('smoke' if quick else None).train.batch_size
  t_last, last = progress[-1]
  rate = None   # From the second progress line to the last: past the first steps' compiling.
  if len(progress) >= 3:
    t_prev, prev = progress[1]
    rate = (int(last.group(1)) - int(prev.group(1))) * batch / max(t_last - t_prev, 1e-9)
  return {'config': config, 'seconds': round(time.time() - t0, 1), 'exit_code': proc.returncode,
          'step': int(last.group(1)), 'kimg': float(last.group(2)), 'T': int(last.group(3)),
          'p': float(last.group(4)), 'r_d': float(last.group(5)), 'batch': batch,
          'images_per_s': rate, 'images_per_s_note': 'from the second progress line to the last; '
          'None with fewer than 3 lines (the run was still compiling)'}


def goals(data: dict) -> dict:
  mixed = [row['images_per_s'] for name, row in data.items() if name.startswith('train_auto')
           and isinstance(row, dict) and 'images_per_s' in row]
  fid = (data.get('inception') or {}).get('seconds_50k')
  return {'cifar_step_mixed_images_per_s >= 2000': (max(mixed) >= 2000) if mixed else None,
          'inception_50k_seconds < 60': (fid < 60) if fid else None,
          'note': 'targets for one H200; on other machines for information only'}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default=str(REPO / '.device_data' / 'device_check.json'))
  parser.add_argument('--data', default=str(REPO / '.device_data' / 'cifar10' / 'train.zip'))
  parser.add_argument('--run-seconds', type=float, default=120)
  parser.add_argument('--quick', action='store_true', help='tiny sizes: checks the script on a CPU')
  parser.add_argument('--sections', default='', help='comma-separated subset (default: all, in '
                      'the order: the mixed batch-64 step, Inception and the run first)')
  args = parser.parse_args()
  report = Report(pathlib.Path(args.out), args.quick)
  run_dir = REPO / '.device_data' / f'run-{int(time.time())}'
  sections = {'devices': (devices,),
              'vs_reference_projected': (side_by_side, args.quick, 'projected'),
              'train_auto_64': (train, args.quick, 'auto', 64),
              'vs_reference_stylegan2': (side_by_side, args.quick, 'stylegan2'),
              'inception': (inception, args.quick),
              'cifar_run': (cifar_run, args.data, args.run_seconds, args.quick, run_dir),
              'models': (models, args.quick),
              'train_auto_32': (train, args.quick, 'auto', 32),
              'train_float32_64': (train, args.quick, 'float32', 64),
              'train_float32_32': (train, args.quick, 'float32', 32)}
  if args.quick:   # On a CPU 'auto' is float32 and every setting compiles for minutes: one.
    for name in ('train_auto_32', 'train_float32_64', 'train_float32_32'):
      del sections[name]
  names = args.sections.split(',') if args.sections else list(sections)
  unknown = [name for name in names if name not in sections]
  if unknown:
    parser.error(f'--sections: unknown {unknown}; choose from {list(sections)}')
  for name in names:
    report.section(name, *sections[name])
  report.data['goals'] = 'not evaluated (--quick)' if args.quick else goals(report.data)
  report.write()
  print(json.dumps(report.data.get('goals'), indent=1))
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
