"""Export a dgan_jax run to the reference's PyTorch format.

  python -m dgan_jax.export --workdir=runs/x --format=torch --out=network.pt

writes `{'G', 'D', 'G_ema'}` as PyTorch state dicts with exactly the reference's keys, shapes and
float32 dtypes (raw equalized-lr parameters and the w_avg / noise_const / resample_filter buffers),
plus `G_kwargs`, `D_kwargs`, `training_set_kwargs` and `progress` to rebuild the reference's
`network-snapshot.pkl` (docs/interop.md has the few lines to run in a checkout of the reference).
An InsGen run adds `D_ema`, `DHead`, `GHead` (int64 `queue_ptr`) and `DHead_kwargs`, `GHead_kwargs`.
`--format=npz` writes the same arrays as `<net>/<key>` entries of a numpy archive (no torch needed).
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

import ml_collections
import numpy as np

from dgan_jax import errors, families, run_dir
from dgan_jax.interop import reference_config
from dgan_jax.models import torch_names

FORMATS = ('torch', 'npz')
STATE_DICTS = ('G', 'D', 'G_ema', 'D_ema', 'DHead', 'GHead')   # bundle entries that are state dicts
KIMG_PER_TICK = 4   # The reference's default tick length (cur_tick = cur_nimg // 4000).
INITIAL_BEST_FID = 9999.0   # The reference's best_fid before any evaluation.


def import_torch_or_explain(purpose: str):
  """`import torch`, or an ImportError saying how to install the optional extra."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        f'{purpose} needs PyTorch, which is not installed. Install the optional extra: '
        "pip install 'dgan_jax[torch]' (torch==2.13.0), or use --format=npz.") from e
  return torch


def state_dicts(config: ml_collections.ConfigDict, state, with_d: bool = True) -> dict:
  """{'G', 'G_ema'[, 'D', ...]}: the family's reference state dicts (numpy, reference order)."""
  return families.get(config).export_state_dicts(config, state, with_d)


def stylegan2_state_dicts(config: ml_collections.ConfigDict, state, with_d: bool = True) -> dict:
  """StyleGAN2 networks in the stylegan2-ada / Diffusion-StyleGAN2 keys."""
  buffers = jax_to_numpy(state.g_buffers)
  out = {'G': torch_names.to_torch_state_dict(jax_to_numpy(state.g_params), buffers, 'G')}
  if with_d:
    reference_config.discriminator_kwargs(config)   # Raises if D has no reference equivalent.
    out['D'] = torch_names.to_torch_state_dict(jax_to_numpy(state.d_params), None, 'D')
  out['G_ema'] = torch_names.to_torch_state_dict(jax_to_numpy(state.g_ema_params), buffers, 'G')
  return out


def jax_to_numpy(tree):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def progress(config: ml_collections.ConfigDict, state) -> dict:
  """The reference's `progress` entry (plain numbers; `to_torch` makes the tensors)."""
  nimg = int(state.images_seen)
  return dict(cur_nimg=nimg, cur_tick=nimg // (KIMG_PER_TICK * 1000), cur_p=float(state.diffusion.p),
              batch_idx=int(state.step), best_fid=INITIAL_BEST_FID, pl_mean=float(state.pl_mean))


def bundle(config: ml_collections.ConfigDict, state, with_d: bool = True) -> dict:
  """Everything the export writes, as numpy arrays and plain Python values."""
  data = state_dicts(config, state, with_d)
  data.update(families.get(config).export_kwargs(config, with_d))
  data['training_set_kwargs'] = reference_config.training_set_kwargs(config)
  data['progress'] = progress(config, state)
  data['dgan_jax'] = dict(step=int(state.step), config=config.to_json())
  return data


def _tensor_dtype(array) -> np.dtype:
  """float32 for floating entries, int64 (torch.long) for integer ones (InsGen's queue_ptr)."""
  return np.dtype(np.int64) if np.issubdtype(np.asarray(array).dtype, np.integer) else np.dtype(
      np.float32)


def to_torch(data: dict) -> dict:
  """The bundle with torch tensors: float32 state dicts (int64 integer buffers),
  LongTensor/FloatTensor progress."""
  torch = import_torch_or_explain('Writing a PyTorch export')
  from collections import OrderedDict  # pylint: disable=import-outside-toplevel
  out: dict[str, Any] = {}
  for name, value in data.items():
    if name in STATE_DICTS:
      out[name] = OrderedDict(
          (k, torch.from_numpy(np.array(v, dtype=_tensor_dtype(v), order='C', copy=True)))
          for k, v in value.items())
    elif name == 'progress':
      out[name] = dict(cur_nimg=torch.LongTensor([value['cur_nimg']]),
                       cur_tick=torch.LongTensor([value['cur_tick']]),
                       cur_p=torch.FloatTensor([value['cur_p']]),
                       batch_idx=torch.LongTensor([value['batch_idx']]),
                       best_fid=value['best_fid'],
                       pl_mean=torch.tensor(value['pl_mean'], dtype=torch.float32))
    else:
      out[name] = value
  return out


def write(data: dict, out: str | pathlib.Path, fmt: str = 'torch') -> pathlib.Path:
  """Writes a bundle as a torch file (`torch.save`) or an npz archive; returns the path."""
  if fmt not in FORMATS:
    raise errors.UserError(f'--format={fmt!r} is unknown; use one of {FORMATS}.')
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  if fmt == 'torch':
    torch = import_torch_or_explain('Writing a PyTorch export')
    torch.save(to_torch(data), out)
    return out
  arrays = {f'{net}/{k}': v for net in STATE_DICTS if net in data for k, v in data[net].items()}
  meta = {k: v for k, v in data.items() if k not in STATE_DICTS}
  np.savez(out, __meta__=np.asarray(json.dumps(meta)), **arrays)
  return out


def export_run(workdir: str | pathlib.Path, out: str | pathlib.Path, fmt: str = 'torch',
               step: int | None = None, with_d: bool = True) -> pathlib.Path:
  """Exports the checkpoint `step` (latest if None) of the run in `workdir` to `out`."""
  if fmt == 'torch':
    import_torch_or_explain('Writing a PyTorch export')   # Fail before restoring anything.
  config = run_dir.load_config(workdir, step)
  _, state = run_dir.restore_state(workdir, config, step)
  return write(bundle(config, state, with_d), out, fmt)


def main(argv):
  from absl import app  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  path = export_run(FLAGS.workdir, FLAGS.out, FLAGS.format, FLAGS.step, FLAGS.with_d)
  print(f'Wrote {path}')


if __name__ == '__main__':
  from absl import app, flags
  flags.DEFINE_string('workdir', None, 'dgan_jax run directory to export.')
  flags.DEFINE_string('out', None, 'Output file (e.g. network.pt).')
  flags.DEFINE_enum('format', 'torch', FORMATS, 'torch: torch.save of state dicts; npz: numpy.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_bool('with_d', True, 'Also export the discriminator.')
  flags.mark_flags_as_required(['workdir', 'out'])
  FLAGS = flags.FLAGS
  from dgan_jax import cli  # pylint: disable=import-outside-toplevel
  app.run(errors.run_cli(main), flags_parser=cli.parse_flags)
