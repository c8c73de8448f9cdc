"""Command-line parsing shared by `dgan_jax.main`, `dgan_jax.export` and `dgan_jax.import_torch`:
a bad flag, a missing config file or an unknown config field is one clean `error:` line with the
fix and exit code 2 (absl would print a traceback or exit 1).

  app.run(errors.run_cli(main), flags_parser=cli.parse_flags)
"""
from __future__ import annotations

import pathlib
import runpy
import sys

from absl import flags

from dgan_jax import errors

REPO = pathlib.Path(__file__).resolve().parents[1]


def usage_error(message: str) -> None:
  """Prints `error: message` on stderr and exits 2."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(errors.UserError.exit_code)


def parse_flags(argv):
  """absl flags parser: FLAGS(argv) with clean errors."""
  check_config_path(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    usage_error(f'{e}. See --helpfull for the flags.')
  except (AttributeError, KeyError) as e:
    usage_error(unknown_field_message(argv, str(e).strip('"\'')))
  return None


def config_arg(argv) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def check_config_path(argv) -> None:
  """--config=<file>[:variant] must name an existing file (ml_collections would fail later with a
  traceback); a path relative to the current folder that only exists in the repository is named."""
  value = config_arg(argv)
  if not value:
    return
  path = pathlib.Path(value.split(':', 1)[0])
  if path.is_file():
    return
  message = f'--config={value}: {path} does not exist'
  if not path.is_absolute():
    message += f' (relative to the current folder {pathlib.Path.cwd()})'
    if (REPO / path).is_file():
      message += f'; did you mean --config={REPO / value}?'
  else:
    message += '.'
  usage_error(message + ' Pass an existing config file, e.g. --config=configs/toy25.py from the '
              'repository root.')


def unknown_field_message(argv, name: str) -> str:
  """Names the --config.x.y override with the unknown field and lists the section's fields."""
  overrides = [a.split('=', 1)[0][2:] for a in argv if a.startswith('--config.')]
  bad = next((o for o in overrides if name in o.split('.')[1:]), None)
  if bad is None:
    return f'Unknown config field {name!r}. Check the spelling of the --config.* overrides.'
  parts = bad.split('.')[1:]
  section = '.'.join(parts[:parts.index(name)])
  fields = _section_fields(argv, section)
  listing = f' Fields of config{"." + section if section else ""}: {", ".join(fields)}.' if fields else ''
  return (f'--{bad}: {name!r} is not a field of config{"." + section if section else ""}.'
          f'{listing} Check the spelling (configs/base.py documents every field).')


def _section_fields(argv, section: str) -> list[str]:
  """The fields of `section` of the --config file (empty if it cannot be loaded)."""
  value = config_arg(argv)
  if not value:
    return []
  path, _, arg = value.partition(':')
  try:
    sys.path.insert(0, str(REPO))
    config = runpy.run_path(path)['get_config'](*([arg] if arg else []))
    for part in filter(None, section.split('.')):
      config = config[part]
    return sorted(config.keys())
  except Exception:  # pylint: disable=broad-except  (only a nicer message is lost)
    return []
  finally:
    sys.path.remove(str(REPO))
