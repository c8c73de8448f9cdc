"""Fault injection on the toy, end to end through the command line: kill / corrupt / resume matrix.

  PYTHONPATH=. python benchmarks/fault_matrix.py [--cases=kill9,flip,...] [--steps=24] [--devices=8]

Every case runs `python -m dgan_jax.main --config=configs/toy25.py:smoke` (24 steps, a checkpoint
every 4) in a fresh workdir, injects one fault (a signal, damage to a file, a second writer, a
changed config, a full or read-only disk, a diverging learning rate), then checks what the user
sees (exit code, message, time) and, where the run can continue, resumes it with the same command
and compares the final parameters with an uninterrupted run bit for bit. Prints one table row per
case; docs/reliability.md quotes the table.
"""
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests'))

flags.DEFINE_string('cases', '', 'Comma list of cases to run (default: all).')
flags.DEFINE_integer('steps', 24, 'Training steps of the toy run.')
flags.DEFINE_integer('devices', 8, 'Fake CPU devices per process.')
flags.DEFINE_string('tmp', '', 'Scratch folder (default: a new temp folder, removed at the end).')
FLAGS = flags.FLAGS


class Run:
  """The toy run of one case: its workdir and the command that trains it."""

  def __init__(self, root: pathlib.Path, name: str, extra=()):
    self.workdir = root / name
    self.extra = list(extra)

  def args(self, *more, config='configs/toy25.py:smoke'):
    steps = FLAGS.steps
    return [sys.executable, '-m', 'dgan_jax.main', f'--config={config}',
            f'--workdir={self.workdir}', f'--config.train.total_kimg={64 * steps / 1000}',
            f'--config.train.checkpoint_every_kimg={64 * 4 / 1000}',
            '--config.train.log_every_steps=4', *self.extra, *more]

  def env(self):
    return dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES=str(FLAGS.devices),
                PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='3')

  def start(self, *more, preexec_fn=None):
    return subprocess.Popen(self.args(*more), cwd=REPO, env=self.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)

  def run(self, *more, timeout=600, preexec_fn=None, config='configs/toy25.py:smoke'):
    start = time.time()
    proc = subprocess.run(self.args(*more, config=config), cwd=REPO, env=self.env(), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)
    return proc, time.time() - start

  def steps(self):
    folder = self.workdir / 'checkpoints'
    return sorted(int(p.name) for p in folder.glob('*') if p.name.isdigit()) if folder.is_dir() else []

  def wait_for_checkpoint(self, proc, after=0, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
      if [s for s in self.steps() if s > after]:
        return True
      time.sleep(0.05)
    return False


def error_line(stderr: str) -> str:
  lines = [line for line in stderr.splitlines() if line.startswith('error: ')]
  return lines[0][7:] if lines else ''


def final_params(workdir: pathlib.Path):
  """G, D and G_ema of the run's latest checkpoint (verified), as numpy arrays."""
  import jax  # pylint: disable=import-outside-toplevel
  from dgan_jax import checkpoint, families, run_dir  # pylint: disable=import-outside-toplevel
  config = run_dir.load_config(workdir)
  shapes = run_dir.abstract_state(config, families.build_networks(config))
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)
  state = ckpt.restore(shapes)
  ckpt.close()
  return int(state.step), [np.asarray(x) for x in jax.tree.leaves(
      (state.g_params, state.d_params, state.g_ema_params))]


def bitwise(workdir, baseline) -> str:
  step, params = final_params(workdir)
  if step != baseline[0]:
    return f'ended at step {step}'
  same = all(np.array_equal(a, b) for a, b in zip(params, baseline[1]))
  return 'bitwise equal' if same else 'DIFFERS'


def resume_to_end(run: Run, baseline):
  proc, seconds = run.run()
  if proc.returncode != 0:
    return f'resume failed (exit {proc.returncode}: {error_line(proc.stderr)[:80]})'
  return f'resumed: {bitwise(run.workdir, baseline)}'


def small_files_only(limit):
  def apply():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
  return apply


# --- Cases: each returns (fault, what the user saw, outcome, passed) --------------------------------

def case_kill9(root, baseline):
  run = Run(root, 'kill9')
  for after in (0, 8):   # Twice: after the first checkpoint, then later in the resumed run.
    proc = run.start()
    run.wait_for_checkpoint(proc, after)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
  outcome = resume_to_end(run, baseline)
  return ('kill -9 twice mid-run', f'checkpoints left: {run.steps()}', outcome,
          outcome.endswith('bitwise equal'))


def case_signal(root, baseline, sig, name, twice=False):
  run = Run(root, name)
  proc = run.start()
  run.wait_for_checkpoint(proc)
  start = time.time()
  proc.send_signal(sig)
  if twice:   # a moment later: two signals before Python runs the handler arrive as one
    time.sleep(0.5)
    proc.send_signal(sig)
  out, err = proc.communicate(timeout=300)
  seconds = time.time() - start
  saw = f'exit {proc.returncode} after {seconds:.1f} s, traceback: {"Traceback" in err}'
  outcome = resume_to_end(run, baseline)
  # Twice: 130 from our handler, or death by the signal itself (-2; a shell shows 130 too) when
  # the second arrives after the save, once the handlers are restored.
  codes = (130, -int(sig)) if twice else (0,)
  return (f'{signal.Signals(sig).name}{" twice" if twice else ""} after the first checkpoint', saw,
          outcome, proc.returncode in codes and 'Traceback' not in err
          and outcome.endswith('bitwise equal'))


def case_damage(root, baseline, kind):
  from reliability_helpers import damage  # pylint: disable=import-outside-toplevel
  run = Run(root, f'damage_{kind}')
  proc, _ = run.run('--config.train.total_kimg=' + str(64 * 12 / 1000))   # stops at step 12
  latest = run.steps()[-1]
  damage(run.workdir / 'checkpoints' / str(latest), kind)
  proc, seconds = run.run()
  skipped = f'Skipped damaged checkpoint {latest}' in proc.stdout
  moved = (run.workdir / 'damaged_checkpoints').is_dir()
  outcome = (f'resumed: {bitwise(run.workdir, baseline)}' if proc.returncode == 0
             else f'exit {proc.returncode}: {error_line(proc.stderr)[:80]}')
  return (f'latest checkpoint: {kind}', f'skipped and reported: {skipped}, moved aside: {moved}',
          outcome, skipped and moved and outcome.endswith('bitwise equal'))


def case_all_damaged(root, baseline):
  del baseline
  from reliability_helpers import damage  # pylint: disable=import-outside-toplevel
  run = Run(root, 'all_damaged')
  run.run('--config.train.total_kimg=' + str(64 * 8 / 1000))
  for step in run.steps():
    damage(run.workdir / 'checkpoints' / str(step), 'garbage')
  proc, seconds = run.run()
  line = error_line(proc.stderr)
  return ('every checkpoint damaged', f'exit {proc.returncode} in {seconds:.0f} s: {line[:70]}',
          f'nothing moved: {not (run.workdir / "damaged_checkpoints").exists()}',
          proc.returncode == 4 and 'No checkpoint' in line)


def case_history(root, baseline):
  run = Run(root, 'history')
  proc = run.start()
  run.wait_for_checkpoint(proc, 8)
  proc.kill()
  proc.wait()
  path = run.workdir / 'diffusion_history.json'
  path.write_text(path.read_text()[:20] if path.exists() else '[{"st')   # a kill mid-write
  outcome = resume_to_end(run, baseline)
  return ('kill -9 while writing diffusion_history.json', 'damaged file moved aside',
          outcome, outcome.endswith('bitwise equal'))


def case_config_json(root, baseline):
  run = Run(root, 'config_json')
  proc = run.start()
  run.wait_for_checkpoint(proc)
  proc.kill()
  proc.wait()
  (run.workdir / 'config.json').write_text('{"data": {"chan')
  proc, _ = run.run(config='configs/from_workdir.py')   # --workdir-only resume (saved config)
  outcome = (f'resumed: {bitwise(run.workdir, baseline)}' if proc.returncode == 0
             else f'exit {proc.returncode}: {error_line(proc.stderr)[:80]}')
  return ('damaged config.json, resume with --workdir only', 'config read from the checkpoint',
          outcome, outcome.endswith('bitwise equal'))


def case_stale_lock(root, baseline):
  run = Run(root, 'stale_lock')
  proc = run.start()
  run.wait_for_checkpoint(proc)
  proc.kill()
  proc.wait()
  had_lock = (run.workdir / '.lock').exists()
  proc, _ = run.run()
  reported = 'stale lock' in proc.stdout
  outcome = f'resumed: {bitwise(run.workdir, baseline)}' if proc.returncode == 0 else 'failed'
  return ('lock left by kill -9', f'lock file left: {had_lock}, takeover reported: {reported}',
          outcome, had_lock and reported and outcome.endswith('bitwise equal'))


def case_two_writers(root, baseline):
  run = Run(root, 'two_writers')
  first = run.start()
  run.wait_for_checkpoint(first)
  proc, seconds = run.run()
  first.communicate(timeout=600)
  outcome = f'first run: {bitwise(run.workdir, baseline)}'
  return ('a second process on the same workdir',
          f'exit {proc.returncode} in {seconds:.0f} s: {error_line(proc.stderr)[:60]}', outcome,
          proc.returncode == 2 and outcome.endswith('bitwise equal'))


def case_changed_config(root, baseline):
  run = Run(root, 'changed_config')
  proc = run.start()
  run.wait_for_checkpoint(proc)
  proc.kill()
  proc.wait()
  before = (run.workdir / 'config.json').read_bytes()
  proc, seconds = run.run('--config.train.batch_size=32', '--config.train.batch_gpu=4')
  unchanged = (run.workdir / 'config.json').read_bytes() == before
  outcome = resume_to_end(run, baseline)
  return ('resume with another batch size',
          f'exit {proc.returncode}: {error_line(proc.stderr)[:60]}',
          f'config.json unchanged: {unchanged}; {outcome}',
          proc.returncode == 2 and unchanged and outcome.endswith('bitwise equal'))


def case_full_disk(root, baseline):
  run = Run(root, 'full_disk')
  run.run('--config.train.total_kimg=' + str(64 * 8 / 1000))
  kept = run.steps()
  proc, seconds = run.run(preexec_fn=small_files_only(20_000))   # files > 20 kB fail (EFBIG)
  intact = run.steps() == kept
  outcome = resume_to_end(run, baseline)
  return ('disk full at the next save (RLIMIT_FSIZE)',
          f'exit {proc.returncode} in {seconds:.0f} s: {error_line(proc.stderr)[:60]}',
          f'older checkpoints intact: {intact}; {outcome}',
          proc.returncode == 4 and intact and outcome.endswith('bitwise equal'))


def case_tmpfs(root, baseline):
  """A real full file system (a 600 kB tmpfs), where mounting is allowed."""
  del baseline
  mount = root / 'tmpfs'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=600k', 'tmpfs', str(mount)],
                    capture_output=True).returncode:
    return ('real full disk (tmpfs)', 'skipped: mount not permitted', '', None)
  try:
    run = Run(mount, 'run')
    proc, seconds = run.run('--config.train.checkpoint_every_kimg=0.32')
    floods = proc.stderr.count('Event loop is closed')
    return ('real full disk (600 kB tmpfs)',
            f'exit {proc.returncode} in {seconds:.0f} s: {error_line(proc.stderr)[:60]}',
            f'"Event loop is closed" lines: {floods}', proc.returncode == 4)
  finally:
    subprocess.run(['umount', str(mount)], capture_output=True)


def case_unwritable(root, baseline):
  del baseline
  run = Run(root, 'unwritable')
  run.workdir.mkdir()
  target = root / 'readonly'
  target.mkdir()
  target.chmod(0o555)
  if os.geteuid() == 0:   # Permissions do not bind root: a sysfs folder refuses new files to all.
    target = pathlib.Path('/sys/kernel')
  (run.workdir / 'checkpoints').symlink_to(target, target_is_directory=True)
  proc, seconds = run.run(timeout=300)
  return ('checkpoint folder not writable',
          f'exit {proc.returncode} in {seconds:.0f} s: {error_line(proc.stderr)[:60]}',
          'no hang', proc.returncode == 4 and seconds < 60)


def case_divergence(root, baseline):
  del baseline
  run = Run(root, 'divergence', ['--config.optim.g_lr=400', '--config.optim.d_lr=400',
                                 '--config.train.checkpoint_every_kimg=0.064'])
  proc, seconds = run.run()
  line = error_line(proc.stderr)
  first = int(line.split('at step ')[1].split()[0]) if 'at step ' in line else None
  kept = run.steps()
  ok = proc.returncode == 3 and first is not None and kept and max(kept) < first
  return ('lr = 400 (overflow to NaN)', f'exit {proc.returncode}: {line[:70]}',
          f'checkpoints kept: {kept}, all before step {first}', bool(ok))


CASES = {
    'kill9': case_kill9,
    'sigterm': lambda r, b: case_signal(r, b, signal.SIGTERM, 'sigterm'),
    'sigint': lambda r, b: case_signal(r, b, signal.SIGINT, 'sigint'),
    'sigint2': lambda r, b: case_signal(r, b, signal.SIGINT, 'sigint2', twice=True),
    'flip': lambda r, b: case_damage(r, b, 'flip'),
    'truncate': lambda r, b: case_damage(r, b, 'truncate'),
    'garbage': lambda r, b: case_damage(r, b, 'garbage'),
    'no_metadata': lambda r, b: case_damage(r, b, 'no_metadata'),
    'empty': lambda r, b: case_damage(r, b, 'empty'),
    'all_damaged': case_all_damaged,
    'history': case_history,
    'config_json': case_config_json,
    'stale_lock': case_stale_lock,
    'two_writers': case_two_writers,
    'changed_config': case_changed_config,
    'full_disk': case_full_disk,
    'tmpfs': case_tmpfs,
    'unwritable': case_unwritable,
    'divergence': case_divergence,
}


def main(argv):
  del argv
  names = [c for c in FLAGS.cases.split(',') if c] or list(CASES)
  root = pathlib.Path(FLAGS.tmp or tempfile.mkdtemp(prefix='fault_matrix_'))
  root.mkdir(parents=True, exist_ok=True)
  start = time.time()
  base = Run(root, 'baseline')
  proc, seconds = base.run()
  assert proc.returncode == 0, proc.stderr[-3000:]
  baseline = final_params(base.workdir)
  print(f'baseline: {FLAGS.steps} steps on {FLAGS.devices} devices in {seconds:.0f} s', flush=True)
  rows = []
  for name in names:
    t0 = time.time()
    try:
      fault, saw, outcome, passed = CASES[name](root, baseline)
    except Exception as e:  # pylint: disable=broad-except
      fault, saw, outcome, passed = name, f'harness error: {type(e).__name__}: {e}'[:100], '', False
    rows.append((name, fault, saw, outcome, passed, time.time() - t0))
    print(f'  {name}: {"PASS" if passed else "skip" if passed is None else "FAIL"} '
          f'({time.time() - t0:.0f} s)', flush=True)
  print()
  print('| case | fault | what the user sees | outcome | result |')
  print('|---|---|---|---|---|')
  for name, fault, saw, outcome, passed, _ in rows:
    verdict = 'PASS' if passed else ('skipped' if passed is None else 'FAIL')
    print(f'| {name} | {fault} | {saw} | {outcome} | {verdict} |')
  failed = sum(1 for r in rows if r[4] is False)
  print(f'\n{len(rows) - failed} of {len(rows)} cases pass ({time.time() - start:.0f} s in all).')
  if not FLAGS.tmp:
    shutil.rmtree(root, ignore_errors=True)
  if failed:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
