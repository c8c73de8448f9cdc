"""Command line: `python -m dgan_jax.main --config=configs/toy25.py --workdir=runs/toy25`.

Modes: `train` (default; resumes automatically from the workdir's latest checkpoint).
Config overrides: `--config.diffusion.target=0.7`; variants: `--config=configs/cifar10.py:smoke`.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app, flags, logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from dgan_jax import train  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and outputs.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (resumes from the workdir) or eval '
                  '(config.eval.metrics of the latest checkpoint).')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: host:port of process 0 (with '
                    '--config.train.distributed=True; omit on SLURM/TPU pods, where it is detected).')
flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process.')
flags.mark_flags_as_required(['config', 'workdir'])


def _quiet_orbax(record) -> bool:
  """Keeps orbax's per-save INFO chatter out of the progress log (warnings still show)."""
  return 'orbax' not in record.pathname or record.levelno >= logging.WARNING


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().python_handler.addFilter(_quiet_orbax)
  config = FLAGS.config
  if config.train.distributed:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')  # CPU hosts; GPUs/TPUs unaffected.
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info('JAX %s, %d process(es), devices: %s', jax.__version__, jax.process_count(),
               jax.devices())
  if FLAGS.mode == 'train':
    train.train_and_evaluate(config, FLAGS.workdir)
  elif FLAGS.mode == 'eval':
    train.evaluate_run(config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
