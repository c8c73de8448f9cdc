"""Import a reference network pickle into a dgan_jax run directory.

  python -m dgan_jax.import_torch --pkl=network-snapshot.pkl --out=runs/imported \
      [--config=configs/cifar10.py] [--init_d=pickle|fresh]

Reads the authors' Diffusion-StyleGAN2, Diffusion-ProjectedGAN (interop/projected_import.py) and
Diffusion-InsGen (interop/insgen_import.py) snapshots and stylegan2-ada pickles as data (no code from
the pickle runs; torch is not needed, see interop/torch_pickle.py), and writes `config.json` plus a
checkpoint that `--mode=generate` / `--mode=eval` read and that training resumes from. The
reference saves no optimizer state: Adam moments start at zero; the image count, p and T come from
the pickle's `progress` entry (p = cur_p, T = t_min + round(p (t_max - t_min))).
"""
from __future__ import annotations

import dataclasses
import pathlib
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dgan_jax import diffusion, errors, run_dir
from dgan_jax.interop import projected_import, reference_config, torch_pickle
from dgan_jax.models import presets, torch_names
from dgan_jax.families import build_networks
from dgan_jax.families.base import init_augment_state
from dgan_jax.train_state import TrainState

D_INIT = ('pickle', 'fresh')


@dataclasses.dataclass
class ReferencePickle:
  """What dgan_jax uses from a reference pickle (numpy state dicts and plain kwargs)."""
  state_dicts: dict            # NETWORKS present -> OrderedDict[str, np.ndarray]
  init_kwargs: dict            # same names -> constructor kwargs
  training_set_kwargs: dict
  progress: dict               # cur_nimg, cur_p, ... as Python numbers (empty if absent)
  diffusion: dict = dataclasses.field(default_factory=dict)  # the snapshot's Diffusion settings
  entries: tuple = ()          # the pickle's top-level keys (an InsGen snapshot has D_ema, DHead, ...)


# The networks of a snapshot: Diffusion-StyleGAN2's and ProjectedGAN's G, D, G_ema, and
# Diffusion-InsGen's D_ema and contrastive heads (DHead: real images, GHead: generated ones).
NETWORKS = ('G', 'D', 'G_ema', 'D_ema', 'DHead', 'GHead')


# The reference `Diffusion` attributes that map onto config.diffusion, and its --aug names
# (Diffusion-InsGen's `AugmentPipe`, its diffusion module, spells them --daug NO / ADA / DIFF).
DIFFUSION_FIELDS = ('beta_schedule', 'beta_start', 'beta_end', 't_min', 't_max', 'noise_std',
                    'ts_dist')
AUG_KINDS = {'no': 'none', 'ada': 'ada', 'diff': 'diffaug',
             'NO': 'none', 'ADA': 'ada', 'DIFF': 'diffaug'}


def diffusion_settings(obj) -> dict:
  """The settings of a snapshot's pickled `Diffusion` module (read as data): its config fields,
  the level p, the augmentation kind (`aug`: Identity / DiffAugment / ADA child) and ada_maxp."""
  if not isinstance(obj, torch_pickle.PersistentObject):
    return {}
  state = obj.state
  out = {k: torch_pickle.plain(state[k]) for k in DIFFUSION_FIELDS if k in state}
  aug_type = state.get('aug_type', 'no')
  if aug_type not in AUG_KINDS:
    raise ValueError(f"The snapshot's Diffusion module has aug={aug_type!r}; dgan_jax knows "
                     f'{sorted(AUG_KINDS)} (the reference\'s --aug choices).')
  out['augment'] = AUG_KINDS[aug_type]
  if state.get('ada_maxp') is not None:
    out['ada_maxp'] = float(state['ada_maxp'])
  if 'p' in state:
    out['p'] = float(np.asarray(state['p']).reshape(-1)[0])
  if state.get('update_beta', True) is False:
    warnings.warn("The snapshot's diffusion module has update_beta=False (its betas fixed for "
                  't_max steps); dgan_jax recomputes them for every T, as the reference\'s default '
                  'update_beta=True does.')
  return out


def read_pickle(path: str | pathlib.Path) -> ReferencePickle:
  """Reads a reference pickle without executing it."""
  data = torch_pickle.load(path)
  if not isinstance(data, dict):
    raise errors.UserError(f'{path} holds a {type(data).__name__}, not the reference\'s dict of '
                     'networks (G, D, G_ema, ...).')
  found = {k: torch_pickle.unwrap_ddp(data.get(k)) for k in NETWORKS}
  nets = {k: v for k, v in found.items() if isinstance(v, torch_pickle.PersistentObject)}
  if 'G_ema' not in nets and 'G' not in nets:
    raise errors.UserError(f'{path} has no G_ema or G network (keys: {sorted(data)}); pass a '
                     'network-snapshot.pkl or a stylegan2-ada network pickle.')
  progress = {}
  for key, value in (data.get('progress') or {}).items():
    value = np.asarray(value)
    progress[key] = value.reshape(-1)[0].item() if value.size else None
  return ReferencePickle(
      state_dicts={k: v.state_dict() for k, v in nets.items()},
      init_kwargs={k: v.init_kwargs for k, v in nets.items()},
      training_set_kwargs=torch_pickle.plain(dict(data.get('training_set_kwargs') or {})),
      progress=progress, diffusion=diffusion_settings(diffusion_module(data)),
      entries=tuple(data))


def diffusion_module(data: dict):
  """A snapshot's diffusion module: Diffusion-StyleGAN2's `diffusion`, or Diffusion-InsGen's
  `augment_pipe` when it is that project's diffusion `AugmentPipe` (it has `aug_type`; a
  stylegan2-ada `augment_pipe` is not a diffusion)."""
  if data.get('diffusion') is not None:
    return data['diffusion']
  pipe = data.get('augment_pipe')
  if isinstance(pipe, torch_pickle.PersistentObject) and 'aug_type' in pipe.state:
    return pipe
  return None


def config_for_pickle(ref: ReferencePickle, config: ml_collections.ConfigDict | None = None,
                      init_d: str = 'pickle', make_base=None) -> ml_collections.ConfigDict:
  """A dgan_jax config whose networks are the pickle's.

  With `config` (e.g. --config=configs/cifar10.py) its networks must equal the pickle's (a
  ValueError names every differing field); its training settings are kept. Without, the training
  settings of the reference preset the networks match (else 'auto') for the pickle's resolution;
  `make_base(preset, resolution)` builds that base config (default: the StyleGAN2 family's).
  """
  g_name = 'G_ema' if 'G_ema' in ref.init_kwargs else 'G'
  g_kwargs = ref.init_kwargs[g_name]
  if 'img_resolution' not in g_kwargs:
    raise errors.UserError(f'The pickle\'s {g_name} has no constructor kwargs (_init_kwargs); only '
                     'networks saved by the reference code (persistent classes) can be imported.')
  d_kwargs = ref.init_kwargs.get('D') if init_d == 'pickle' else None
  if init_d == 'pickle' and d_kwargs is None:
    raise errors.UserError('The pickle has no discriminator D; import with --init_d=fresh to start D '
                     'from a fresh initialization.')
  if config is None:
    derived = preset_config(g_kwargs, d_kwargs, make_base)
  else:
    derived = ml_collections.ConfigDict(config.to_dict())
  reference_config.model_from_kwargs(derived, g_kwargs, d_kwargs)
  tsk = ref.training_set_kwargs
  if config is None:
    if tsk.get('path'):
      derived.data.source = 'zip'
      derived.data.path = str(tsk['path'])
    derived.data.xflip = bool(tsk.get('xflip', derived.data.xflip))
    derived.data.max_images = int(tsk.get('max_size') or 0)
    if tsk.get('use_labels') is not None:
      derived.data.use_labels = bool(tsk['use_labels'])
    apply_diffusion_settings(derived, ref.diffusion)
  else:
    fields = reference_config.MODEL_FIELDS if init_d == 'pickle' else [
        f for f in reference_config.MODEL_FIELDS if not f.startswith('D.')]
    diffs = reference_config.model_differences(config, derived, fields)
    if diffs:
      raise errors.UserError(
          'The pickle\'s networks differ from the given --config (a checkpoint of another preset '
          'or resolution?):\n  ' + '\n  '.join(diffs) +
          '\nPass the config the pickle was trained with, or omit --config to derive one.')
  return derived


def stylegan2_base(preset: str, resolution: int) -> ml_collections.ConfigDict:
  """The StyleGAN2 family's base config for a reference preset at a resolution."""
  from configs import base  # pylint: disable=import-outside-toplevel
  config = base.get_base_config()
  config.model.family = 'stylegan2'
  config.data.resolution = resolution
  presets.apply_preset(config, preset)
  return config


def preset_config(g_kwargs: dict, d_kwargs: dict | None, make_base=None
                  ) -> ml_collections.ConfigDict:
  """A base config (`make_base(preset, resolution)`, default stylegan2_base) with the training
  settings of the reference preset whose networks the pickle has (e.g. `cifar` for the authors'
  CIFAR-10 snapshots), else of 'auto' for its resolution."""
  make_base = make_base or stylegan2_base
  fields = reference_config.MODEL_FIELDS if d_kwargs is not None else [
      f for f in reference_config.MODEL_FIELDS if not f.startswith('D.')]
  candidates = [name for name in presets.PRESETS if name != 'auto'] + ['auto']
  for name in candidates:
    config = make_base(name, int(g_kwargs['img_resolution']))
    template = ml_collections.ConfigDict(config.to_dict())
    reference_config.model_from_kwargs(template, g_kwargs, d_kwargs)
    ignored = ('c_dim', 'num_fp16_res', 'conv_clamp')
    if name == 'auto' or not reference_config.model_differences(
        config, template, [f for f in fields if f not in ignored]):
      return config
  raise AssertionError('unreachable: auto always matches')


def apply_diffusion_settings(config: ml_collections.ConfigDict, settings: dict) -> None:
  """Puts a snapshot's Diffusion settings (diffusion_settings) into `config`."""
  for key in DIFFUSION_FIELDS:
    if key in settings:
      config.diffusion[key] = settings[key]
  if 'augment' in settings and 'augment' in config:
    config.augment.kind = settings['augment']
    if 'ada_maxp' in settings:
      config.augment.ada_maxp = settings['ada_maxp']


def _check_state_dict(name: str, got: dict, expected: dict) -> None:
  """Raises a ValueError naming missing / unexpected keys and shape mismatches."""
  missing = [k for k in expected if k not in got]
  extra = [k for k in got if k not in expected]
  shapes = [f'{k}: {tuple(np.shape(got[k]))} != {tuple(expected[k].shape)}'
            for k in expected if k in got and tuple(np.shape(got[k])) != tuple(expected[k].shape)]
  problems = []
  if missing:
    problems.append(f'{len(missing)} missing key(s): {", ".join(missing[:8])}'
                    + (' ...' if len(missing) > 8 else ''))
  if extra:
    problems.append(f'{len(extra)} unexpected key(s): {", ".join(extra[:8])}'
                    + (' ...' if len(extra) > 8 else ''))
  if shapes:
    problems.append('shape mismatches: ' + '; '.join(shapes[:8]))
  if problems:
    hint = (' A stylegan2-ada D is not t-conditioned: import with --init_d=fresh.'
            if name == 'D' else ' The pickle is incomplete or not a reference network pickle.')
    raise errors.UserError(f'The pickle\'s {name} does not match its dgan_jax equivalent: '
                     + '; '.join(problems) + '.' + hint)


def _zeros_like_tree(shapes):
  return jax.tree.map(lambda s: np.broadcast_to(np.zeros((), s.dtype), s.shape), shapes)


def build_state(ref: ReferencePickle, config: ml_collections.ConfigDict,
                init_d: str = 'pickle') -> tuple[TrainState, int]:
  """(train state, step) holding the pickle's G, G_ema (and D), fresh Adam moments and p / T."""
  nets = build_networks(config)
  key = jax.random.key(config.seed)
  init_key, ctrl_key, run_key = jax.random.split(key, 3)   # as train.create_train_state
  shapes = jax.eval_shape(lambda: nets.init(init_key, config.train.batch_gpu))
  g_params_shape, g_buffers_shape, d_params_shape, _ = shapes
  expected_g = torch_names.to_torch_state_dict(_zeros_like_tree(g_params_shape),
                                               _zeros_like_tree(g_buffers_shape), 'G')
  sds = dict(ref.state_dicts)
  if 'G' not in sds or 'G_ema' not in sds:
    present = 'G' if 'G' in sds else 'G_ema'
    warnings.warn(f'The pickle only has {present}; using it for both G and G_ema.')
    sds['G'] = sds['G_ema'] = sds[present]
  for name in ('G', 'G_ema'):
    _check_state_dict(name, sds[name], expected_g)
  g_params, g_buffers = torch_names.from_torch_state_dict(sds['G'], 'G')
  g_ema_params, g_ema_buffers = torch_names.from_torch_state_dict(sds['G_ema'], 'G')
  if any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(g_buffers),
                                                   jax.tree.leaves(g_ema_buffers))):
    warnings.warn('G and G_ema have different buffers (w_avg / noise_const); keeping G_ema\'s, '
                  'which generation and evaluation use.')
  g_buffers = g_ema_buffers
  if init_d == 'pickle':
    expected_d = torch_names.to_torch_state_dict(_zeros_like_tree(d_params_shape), None, 'D')
    _check_state_dict('D', sds.get('D', {}), expected_d)
    d_params, _ = torch_names.from_torch_state_dict(sds['D'], 'D')
  else:
    d_params = jax.jit(lambda: nets.init(init_key, config.train.batch_gpu)[2])()
  # Same tree structure (and leaf order) as a fresh state, so orbax restores it in the loop.
  g_params = _like_template(g_params, g_params_shape)
  g_ema_params = _like_template(g_ema_params, g_params_shape)
  g_buffers = _like_template(g_buffers, g_buffers_shape)
  d_params = _like_template(d_params, d_params_shape)

  from dgan_jax.train import make_optimizers  # pylint: disable=import-outside-toplevel
  g_tx, d_tx = make_optimizers(config)
  nimg = int(ref.progress.get('cur_nimg') or 0)
  if nimg >= 2**31:
    raise errors.UserError(f'cur_nimg={nimg} does not fit the int32 image counter.')
  step = nimg // config.train.batch_size
  num_pools = config.train.batch_size // config.train.batch_gpu
  ctrl = diffusion.init_state(ctrl_key, config.diffusion, num_pools)
  p = ref.progress.get('cur_p')
  ctrl = restore_level(ctrl, float(ref.diffusion.get('p', 0.0) if p is None else p),
                       config.diffusion)
  state = TrainState(
      step=jnp.asarray(step, jnp.int32), images_seen=jnp.asarray(nimg, jnp.int32),
      g_params=g_params, g_buffers=g_buffers, g_ema_params=g_ema_params, d_params=d_params,
      d_buffers={}, augment=init_augment_state(config, ctrl), g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params), diffusion=ctrl,
      pl_mean=jnp.asarray(float(ref.progress.get('pl_mean') or 0.0), jnp.float32), key=run_key,
      extra={})
  return state, step


def _like_template(tree: dict, template):
  """`tree`'s arrays re-packed into `template`'s pytree structure (same paths, same leaf order)."""
  leaves = []
  for path, _ in jax.tree_util.tree_flatten_with_path(template)[0]:
    node = tree
    for entry in path:
      node = node[entry.key]
    leaves.append(jnp.asarray(node))
  return jax.tree.unflatten(jax.tree.structure(template), leaves)


def transfer_state(path: str | pathlib.Path, config: ml_collections.ConfigDict,
                   fresh: TrainState, ref: ReferencePickle | None = None
                   ) -> tuple[TrainState, list[str]]:
  """`fresh` with G, G_ema (and every D tensor whose name and shape match) from the pickle at
  `path` (`ref`: it, already read): transfer learning (`config.train.resume_from`). Optimizer
  state, step, image count and the diffusion controller stay fresh. Returns (state, the D entries
  that start fresh), e.g. the t-mapping and the epilogue's output layer when the pickle's D is
  stylegan2-ada's (no t input)."""
  ref = read_pickle(path) if ref is None else ref
  g_name = 'G_ema' if 'G_ema' in ref.init_kwargs else 'G'
  template = ml_collections.ConfigDict(config.to_dict())
  reference_config.model_from_kwargs(template, ref.init_kwargs[g_name], None)
  g_fields = [f for f in reference_config.MODEL_FIELDS if not f.startswith('D.') and f != 'c_dim']
  diffs = reference_config.model_differences(config, template, g_fields)
  if diffs:
    raise errors.UserError(
        f'config.train.resume_from={path}: the pickle\'s generator differs from the config\'s:\n  '
        + '\n  '.join(diffs) + '\nUse the config of the preset and resolution the pickle was '
        'trained with.')
  expected_g = torch_names.to_torch_state_dict(jax.device_get(fresh.g_params),
                                               jax.device_get(fresh.g_buffers), 'G')
  sds = dict(ref.state_dicts)
  for name in ('G', 'G_ema'):
    sds.setdefault(name, sds.get('G_ema', sds.get('G')))
    _check_state_dict(name, sds[name], expected_g)
  g_params, _ = torch_names.from_torch_state_dict(sds['G'], 'G')
  g_ema_params, g_buffers = torch_names.from_torch_state_dict(sds['G_ema'], 'G')
  state = fresh.replace(g_params=_like_template(g_params, fresh.g_params),
                        g_ema_params=_like_template(g_ema_params, fresh.g_params),
                        g_buffers=_like_template(g_buffers, fresh.g_buffers))
  fresh_d = torch_names.to_torch_state_dict(jax.device_get(fresh.d_params), None, 'D')
  got = {k: np.asarray(v) for k, v in (sds.get('D') or {}).items() if k in fresh_d}
  kept = {k: v for k, v in got.items() if v.shape == np.shape(fresh_d[k])}
  merged = {k: kept.get(k, fresh_d[k]) for k in fresh_d}
  d_params, _ = torch_names.from_torch_state_dict(merged, 'D')
  state = state.replace(d_params=_like_template(d_params, fresh.d_params))
  return state, [k for k in fresh_d if k not in kept]


def restore_level(ctrl: diffusion.DiffusionState, p: float, cfg) -> diffusion.DiffusionState:
  """The controller at level p (the reference's progress['cur_p']): exact ticks, T, fresh t_epl."""
  if not 0.0 <= p <= 1.0:
    raise errors.UserError(f"progress['cur_p']={p} is outside [0, 1].")
  ticks = jnp.asarray(diffusion.level_ticks(p, cfg), jnp.int32)
  T = diffusion.ticks_to_T(ticks, cfg)
  key, sub = jax.random.split(ctrl.key)
  return ctrl.replace(p_ticks=ticks, p=(ticks / diffusion.ticks_per_unit(cfg)).astype(jnp.float32),
                      T=T, t_epl=diffusion.sample_t_epl(sub, T, cfg, ctrl.t_epl.shape[0], ticks),
                      key=key)


def import_pickle(pkl: str | pathlib.Path, out: str | pathlib.Path,
                  config: ml_collections.ConfigDict | None = None,
                  init_d: str = 'pickle') -> pathlib.Path:
  """Reads `pkl` and writes the dgan_jax run directory `out`; returns it."""
  if init_d not in D_INIT:
    raise errors.UserError(f'--init_d={init_d!r} is unknown; use one of {D_INIT}.')
  out = pathlib.Path(out)
  if (out / 'checkpoints').exists() and any((out / 'checkpoints').iterdir()):
    raise errors.OutputExistsError(f'{out} already holds checkpoints; choose a new --out directory.')
  ref = read_pickle(pkl)
  config = config_for(ref, config, init_d)
  state, step = state_for(ref, config, init_d)
  return run_dir.write_run(out, config, state, step)


def config_for(ref: ReferencePickle, config: ml_collections.ConfigDict | None = None,
               init_d: str = 'pickle') -> ml_collections.ConfigDict:
  """The config of any reference snapshot: Diffusion-ProjectedGAN (interop/projected_import.py),
  Diffusion-InsGen (interop/insgen_import.py; into a `--config` of another family only its G, D
  and G_ema), else Diffusion-StyleGAN2 / stylegan2-ada (config_for_pickle)."""
  from dgan_jax import families  # pylint: disable=import-outside-toplevel
  from dgan_jax.interop import insgen_import  # pylint: disable=import-outside-toplevel
  if projected_import.is_projected(ref):
    if init_d != 'pickle':
      raise errors.UserError('--init_d=fresh: a projected pickle\'s D (mixers, backbone) is '
                             'always imported; drop --init_d.')
    return projected_import.config_for(ref, config)
  family = None if config is None else families.family_name(config)
  if insgen_import.is_insgen(ref) and family in (None, 'insgen'):
    return insgen_import.config_for(ref, config, init_d)
  if insgen_import.is_insgen(ref):
    warnings.warn(f'A Diffusion-InsGen snapshot into a model.family={family!r} config: only G, D '
                  'and G_ema are imported (an insgen config also takes D_ema, the heads and their '
                  'queues).')
  return config_for_pickle(ref, config, init_d)


def state_for(ref: ReferencePickle, config: ml_collections.ConfigDict,
              init_d: str = 'pickle') -> tuple[TrainState, int]:
  """(train state, step) of a snapshot for `config` (config_for's), by the config's family."""
  from dgan_jax import families  # pylint: disable=import-outside-toplevel
  from dgan_jax.interop import insgen_import  # pylint: disable=import-outside-toplevel
  family = families.family_name(config)
  if family == 'projected':
    return projected_import.build_state(ref, config)
  if family == 'insgen':
    return insgen_import.build_state(ref, config, init_d)
  return build_state(ref, config, init_d)


def main(argv):
  from absl import app  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  out = import_pickle(FLAGS.pkl, FLAGS.out, FLAGS.config, FLAGS.init_d)
  print(f'Wrote {out}')


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  flags.DEFINE_string('pkl', None, 'Reference network pickle (network-snapshot.pkl, *.pkl).')
  flags.DEFINE_string('out', None, 'New dgan_jax run directory.')
  config_flags.DEFINE_config_file('config', None, 'Config whose training settings to keep '
                                  '(its networks must match the pickle).', lock_config=False)
  flags.DEFINE_enum('init_d', 'pickle', D_INIT, 'pickle: the pickle\'s D; fresh: a new D.')
  flags.mark_flags_as_required(['pkl', 'out'])
  FLAGS = flags.FLAGS
  from dgan_jax import cli  # pylint: disable=import-outside-toplevel
  app.run(errors.run_cli(main), flags_parser=cli.parse_flags)
