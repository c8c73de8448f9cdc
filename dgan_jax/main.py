"""Command line: `python -m dgan_jax.main --config=configs/toy25.py --workdir=runs/toy25`.

Modes: `train` (default; resumes automatically from the workdir's latest checkpoint), `eval`
(config.eval.metrics of the latest checkpoint, or `--step`), `generate` (images by seed,
dgan_jax/generate.py); with `--pkl=network.pkl` eval and generate first import an authors' or
stylegan2-ada pickle into --workdir.
Without --config the run's saved `<workdir>/config.json` is used (configs/from_workdir.py).
Config overrides: `--config.diffusion.target=0.7`; variants: `--config=configs/cifar10.py:smoke`.

Exit codes (docs/reliability.md): 0 done or stopped cleanly (SIGTERM / Ctrl-C: checkpoint saved),
2 bad input (one `error:` line with the fix), 3 training diverged, 4 storage (cannot write a
checkpoint, none verifies), 130 interrupted before training or by a second Ctrl-C; a traceback
means a bug.
"""
import logging as pylogging
import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app, flags, logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from dgan_jax import checkpoint, cli, errors, train  # noqa: E402

FLAGS = flags.FLAGS


def configs_dir() -> pathlib.Path:
  """The experiment configs shipped with the package (`configs/`, installed beside dgan_jax)."""
  import configs  # pylint: disable=import-outside-toplevel
  return pathlib.Path(configs.__file__).resolve().parent


def resolve_config_arg(argv: list[str]) -> list[str]:
  """`--config=configs/x.py[:variant]` works from any folder: a path that does not exist here is
  looked up among the installed configs (`configs/cifar10.py`, `cifar10.py` or `cifar10`)."""
  out = []
  for arg in argv:
    if arg.startswith('--config='):
      path, sep, variant = arg[len('--config='):].partition(':')
      if path and not pathlib.Path(path).exists():
        name = pathlib.Path(path).name
        candidate = configs_dir() / (name if name.endswith('.py') else name + '.py')
        if candidate.exists():
          arg = f'--config={candidate}{sep}{variant}'
    out.append(arg)
  return out


try:
  config_flags.DEFINE_config_file('config', str(configs_dir() / 'from_workdir.py'),
                                  'Experiment config file (default: the run\'s saved config.json); '
                                  'a name like configs/cifar10.py:small also works from outside the '
                                  'checkout.', lock_config=True)
except (AttributeError, KeyError) as e:   # --config.x=... overrides on a missing saved config
  if __name__ != '__main__':
    raise
  cli.usage_error(f'--config.* overrides need a config: no --config was given and the workdir has '
                  f'no saved config.json ({e}). Pass --config=configs/<experiment>.py.')
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and outputs.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'generate'], 'train (resumes from the '
                  'workdir), eval (config.eval.metrics of the latest checkpoint) or generate.')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: host:port of process 0 (with '
                    '--config.train.distributed=True; omit on SLURM/TPU pods, where it is detected).')
flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process.')
flags.DEFINE_string('seeds', '0-63', 'generate: seeds, e.g. 0-63 or 1,5,10-12.')
flags.DEFINE_float('trunc', 1.0, 'generate: truncation psi.')
flags.DEFINE_enum('noise_mode', 'const', ['const', 'random', 'none'], 'generate: noise mode.')
flags.DEFINE_integer('class_idx', None, 'generate: class label of a conditional model.')
flags.DEFINE_string('outdir', None, 'generate: output folder (default <workdir>/generate).')
flags.DEFINE_integer('step', None, 'eval / generate: the checkpoint step (default: the latest).')
flags.DEFINE_string('pkl', None, 'eval / generate: an authors\' or stylegan2-ada network pickle, '
                    'imported into --workdir first (a new folder; dgan_jax.import_torch).')
flags.mark_flags_as_required(['workdir'])


def _quiet_orbax(record) -> bool:
  """Keeps orbax's per-save INFO chatter out of the progress log (warnings still show), and the
  error tracebacks of its writer threads and their asyncio tasks to one line each (a failed save
  is reported once, clearly, by checkpoint.py)."""
  if record.name == 'asyncio' and record.levelno >= pylogging.ERROR:
    record.exc_info, record.exc_text = None, None
  if 'orbax' not in record.pathname:
    return True
  if record.levelno >= pylogging.ERROR:
    record.exc_info, record.exc_text = None, None
  if 'read only' in str(record.msg):   # Readers open checkpoints read-only on purpose.
    return False
  return record.levelno >= pylogging.WARNING


def import_pickle(pkl: str, workdir: str, mode: str, config) -> None:
  """`--pkl`: imports the pickle into `workdir` for eval / generate (kept for later runs), with
  `config`'s settings (by default the pickle's own, configs/from_workdir.py)."""
  if mode == 'train':
    raise errors.UserError('--pkl is for --mode=eval and --mode=generate. To train from a pickle: '
                           '--config.train.resume_from=PKL (transfer learning), or import it with '
                           'python -m dgan_jax.import_torch and train with its --workdir.')
  if any(pathlib.Path(workdir, 'checkpoints').glob('[0-9]*')):
    print(f'{workdir} holds checkpoints already: using them, not importing {pkl} again (pass a new '
          '--workdir to import it).', flush=True)
    return
  from dgan_jax import import_torch  # pylint: disable=import-outside-toplevel
  missing = 'missing_run_config' in config
  if missing:   # the pickle could not be read: read_pickle says why
    import_torch.read_pickle(pkl)
  print(f'Imported {pkl} into {import_torch.import_pickle(pkl, workdir, None if missing else config)}',
        flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for handler in pylogging.getLogger().handlers:
    handler.addFilter(_quiet_orbax)
  checkpoint.quiet_failed_save_aftermath()
  config = FLAGS.config
  if FLAGS.pkl:
    import_pickle(FLAGS.pkl, FLAGS.workdir, FLAGS.mode, config)
  if 'missing_run_config' in config:
    raise errors.MissingInputError(
        f'No --config given and no saved run config at {config.missing_run_config}: pass '
        '--config=configs/<experiment>.py (e.g. configs/cifar10.py), or the --workdir of a run.')
  if not config.train.get('verbose_logs', False):
    logging.set_verbosity(logging.WARNING)   # One progress line per interval; details: verbose_logs.
  if config.train.distributed:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')  # CPU hosts; GPUs/TPUs unaffected.
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info('JAX %s, %d process(es), devices: %s', jax.__version__, jax.process_count(),
               jax.devices())
  if FLAGS.mode == 'train':
    train.train_and_evaluate(config, FLAGS.workdir)
  elif FLAGS.mode == 'eval':
    train.evaluate_run(config, FLAGS.workdir, FLAGS.step)
  elif FLAGS.mode == 'generate':
    from dgan_jax import generate  # pylint: disable=import-outside-toplevel
    paths = generate.run(FLAGS.workdir, FLAGS.seeds, FLAGS.trunc, FLAGS.noise_mode,
                         FLAGS.class_idx, FLAGS.outdir, config, step=FLAGS.step)
    print(f'Wrote {len(paths["seeds"])} images, {paths["grid"].name} and the interpolation to '
          f'{paths["grid"].parent}')


if __name__ == '__main__':
  app.run(errors.run_cli(main), argv=resolve_config_arg(sys.argv), flags_parser=cli.parse_flags)
