"""The authors' Diffusion-InsGen snapshots (`diffusion-insgen-*.pkl`) <-> the InsGen family's state.

The reference's training loop (`diffusion-insgen/training/training_loop.py`) pickles G, D, G_ema,
its diffusion module `augment_pipe`, `D_ema` and two contrastive heads: `DHead` (real-instance
discrimination; ours 'real') and `GHead` (fake-instance discrimination; ours 'fake'), persistent
`CLHead`s of `training/contrastive_head.py`, inside a DistributedDataParallel wrapper when it
trained on several GPUs (interop/torch_pickle.py unwraps it). A head's state dict:

  queue [128, Q]        the key queue, a key per column (ours: HeadState.queue [Q, 128], per row)
  queue_ptr int64 [1]   the ring buffer's pointer (HeadState.ptr, int32; may equal Q)
  mlp.0 / mlp.2         Linear(C, C), Linear(C, 128) of the head (ours: params fc0 / fc1)
  momentum_mlp.0 / .2   their momentum copy (HeadState.momentum_params)

Linear weights are [out, in] (ours: Dense kernels [in, out]). D_ema has D's keys. Importing fills
TrainState.extra (d_ema, heads, fresh head Adam states); G, D, G_ema, the image count and the
diffusion level come through import_torch.build_state. The reference's own --resume fails on the
heads (an in-place copy into parameters that require grad, its issue #6): here they are restored,
queues and pointers included.
"""
from __future__ import annotations

import collections
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dgan_jax import errors, families, import_torch
from dgan_jax.models import contrastive, torch_names

HEADS = {'real': 'DHead', 'fake': 'GHead'}      # our head -> the reference's snapshot entry
ENTRIES = ('D_ema', 'DHead', 'GHead')            # what only an InsGen snapshot has
CLHEAD = 'training.contrastive_head.CLHead'
LAYERS = (('fc0', '0'), ('fc1', '2'))            # our Dense layers -> the nn.Sequential indices


def is_insgen(ref) -> bool:
  """Whether a ReferencePickle is a Diffusion-InsGen snapshot (it has D_ema or a head entry)."""
  return any(name in ref.entries for name in ENTRIES)


# --- Head state dicts ------------------------------------------------------------------------------


def head_to_torch(head: contrastive.HeadState) -> 'collections.OrderedDict[str, np.ndarray]':
  """A head as the reference CLHead's state dict, in its order (float32; queue_ptr int64 [1])."""
  out = collections.OrderedDict()
  out['queue'] = np.ascontiguousarray(np.asarray(head.queue, np.float32).T)
  out['queue_ptr'] = np.asarray([int(np.asarray(head.ptr))], np.int64)
  for prefix, params in (('mlp', head.params), ('momentum_mlp', head.momentum_params)):
    for ours, theirs in LAYERS:
      out[f'{prefix}.{theirs}.weight'] = np.ascontiguousarray(
          np.asarray(params[ours]['kernel'], np.float32).T)
      out[f'{prefix}.{theirs}.bias'] = np.asarray(params[ours]['bias'], np.float32)
  return out


def queue_size(state_dict, name: str) -> int:
  """Q of a reference head's `queue` [128, Q]; a clear error for a missing or wrong-width queue."""
  if 'queue' not in state_dict:
    raise errors.UserError(f"The pickle's {name} has no `queue` buffer; a Diffusion-InsGen head "
                           f'(CLHead) holds queue [{contrastive.KEY_DIM}, queue_size] and queue_ptr. '
                           'The pickle is incomplete or not a Diffusion-InsGen snapshot.')
  shape = tuple(np.shape(state_dict['queue']))
  if len(shape) != 2 or shape[0] != contrastive.KEY_DIM:
    raise errors.UserError(
        f"The pickle's {name}.queue has shape {shape}; the reference's queue is "
        f'[{contrastive.KEY_DIM}, queue_size] (one {contrastive.KEY_DIM}-d key per column). '
        'The pickle is damaged or not a Diffusion-InsGen snapshot.')
  return shape[1]


def head_from_torch(state_dict, name: str, template) -> contrastive.HeadState:
  """The reference head `state_dict` (snapshot entry `name`) as a HeadState with `template`'s tree
  (a HeadState of arrays or shapes); errors name missing keys, the queue and feature widths."""
  size = queue_size(state_dict, name)
  inplanes = template.params['fc0']['kernel'].shape[0]
  got = tuple(np.shape(state_dict.get('mlp.0.weight', ())))
  if got and got != (inplanes, inplanes):
    raise errors.UserError(
        f"The pickle's {name} takes {got[-1]}-channel features (mlp.0.weight {got}), but this D's "
        f'4x4 block has {inplanes} channels (model.D.channel_base / channel_max): the head belongs '
        'to other networks.')
  if size != template.queue.shape[0]:
    raise errors.UserError(
        f"The pickle's {name} queue holds {size} keys but the config's queue holds "
        f'{template.queue.shape[0]} (insgen.real_queue_size / fake_queue_size): set it to {size}, '
        'or omit --config to take the pickle\'s.')
  expected = head_to_torch(import_torch._zeros_like_tree(template))  # pylint: disable=protected-access
  import_torch._check_state_dict(name, state_dict, expected)  # pylint: disable=protected-access
  ptr = int(np.asarray(state_dict['queue_ptr']).reshape(-1)[0])
  if not 0 <= ptr <= size:
    raise errors.UserError(f"The pickle's {name}.queue_ptr is {ptr}, outside [0, {size}].")

  def mlp(prefix, like):
    params = {ours: {'kernel': np.asarray(state_dict[f'{prefix}.{theirs}.weight'], np.float32).T,
                     'bias': np.asarray(state_dict[f'{prefix}.{theirs}.bias'], np.float32)}
              for ours, theirs in LAYERS}
    return import_torch._like_template(params, like)  # pylint: disable=protected-access
  return contrastive.HeadState(
      params=mlp('mlp', template.params), momentum_params=mlp('momentum_mlp', template.params),
      queue=jnp.asarray(np.asarray(state_dict['queue'], np.float32).T),
      ptr=jnp.asarray(ptr, jnp.int32))


def head_kwargs(config: ml_collections.ConfigDict, ours: str) -> dict:
  """The reference's `CLHead(**kwargs)` arguments of one of our heads (train.py's DHead_kwargs)."""
  from dgan_jax.models.generator import channels_per_resolution  # pylint: disable=import-outside-toplevel
  c, d = config.insgen, config.model.D
  return dict(class_name=CLHEAD, inplanes=channels_per_resolution(4, d.channel_base, d.channel_max),
              temperature=float(c.temperature), momentum=float(c.momentum),
              queue_size=int(c[f'{ours}_queue_size']))


def export_state_dicts(state) -> dict:
  """{'D_ema', 'DHead', 'GHead'}: the InsGen parts of a state in the reference's keys."""
  extra = jax.device_get(state.extra)
  d_ema = jax.tree.map(np.asarray, extra['d_ema'])
  out = {'D_ema': torch_names.to_torch_state_dict(d_ema, None, 'D')}
  for ours, theirs in HEADS.items():
    out[theirs] = head_to_torch(extra['heads'][ours])
  return out


# --- Import --------------------------------------------------------------------------------------


def _present_heads(ref) -> list[str]:
  present = [theirs for theirs in HEADS.values() if theirs in ref.state_dicts]
  if present and len(present) < len(HEADS):
    missing = [theirs for theirs in HEADS.values() if theirs not in present]
    raise errors.UserError(
        f"The pickle has {present[0]} but no {missing[0]}: a Diffusion-InsGen snapshot holds both "
        'contrastive heads (DHead: real images, GHead: generated ones). The file is incomplete; '
        'import a complete snapshot, or pass a --config with insgen.enabled=False to leave the '
        'heads out.')
  return present


def config_for(ref, config: ml_collections.ConfigDict | None = None,
               init_d: str = 'pickle') -> ml_collections.ConfigDict:
  """The InsGen config of a Diffusion-InsGen snapshot: networks from the kwargs (import_torch.
  config_for_pickle on configs/insgen.py's settings for the matching preset), queue sizes from the
  heads' queues, temperature and momentum from their kwargs; with `config`, its settings."""
  from configs import insgen as insgen_configs  # pylint: disable=import-outside-toplevel
  from dgan_jax.families.insgen import get_insgen_config  # pylint: disable=import-outside-toplevel
  present = _present_heads(ref)
  derived = import_torch.config_for_pickle(ref, config, init_d, make_base=insgen_configs.get_config)
  if 'insgen' not in derived:
    derived.insgen = get_insgen_config()
  c = derived.insgen
  if not present:                     # D_ema only: a --no_insgen run (Diffusion-StyleGAN2 + ADA).
    c.enabled = False
    return derived
  if config is not None and not c.enabled:
    warnings.warn('The --config has insgen.enabled=False: the pickle\'s heads and queues are not '
                  'imported.')
    return derived
  c.enabled = True
  for ours, theirs in HEADS.items():
    size = queue_size(ref.state_dicts[theirs], theirs)
    field = f'{ours}_queue_size'
    if config is not None and c[field] and c[field] != size:
      raise errors.UserError(
          f"config.insgen.{field}={c[field]} but the pickle's {theirs} queue holds {size} keys; "
          f'set --config.insgen.{field}={size} (or 0: take the pickle\'s).')
    c[field] = size
  if config is None:
    kwargs = [ref.init_kwargs.get(theirs) or {} for theirs in HEADS.values()]
    for key in ('temperature', 'momentum'):
      values = {float(k[key]) for k in kwargs if key in k}
      if len(values) > 1:
        warnings.warn(f'The heads have different {key}s {sorted(values)}; dgan_jax uses one '
                      f'(insgen.{key}): taking DHead\'s.')
      if key in kwargs[0]:
        c[key] = float(kwargs[0][key])
  return derived


def build_state(ref, config: ml_collections.ConfigDict, init_d: str = 'pickle'):
  """(train state, step): import_torch.build_state's G, D, G_ema and progress, plus D_ema, both
  heads (momentum copies, queues, pointers) and fresh head optimizers in TrainState.extra.

  A snapshot without heads (Diffusion-StyleGAN2's, into an InsGen config) and init_d='fresh' start
  the heads fresh and D_ema as D, as a new InsGen run does."""
  present = _present_heads(ref)
  state, step = import_torch.build_state(ref, config, init_d)
  if not config.insgen.enabled:
    return state, step
  family = families.get(config)
  nets = family.build_networks(config)
  g_tx, d_tx = family.make_optimizers(config)
  shapes = jax.eval_shape(lambda: family.init_state(config, nets, g_tx, d_tx)).extra
  fresh = init_d != 'pickle' or not present
  if fresh:
    warnings.warn('The InsGen heads start fresh and D_ema as D (' + (
        '--init_d=fresh' if init_d != 'pickle' else 'the pickle has no heads') + ').')
    extra = family.init_extra(config, nets)
    return state.replace(extra={**extra, 'd_ema': state.d_params}), step
  sds = ref.state_dicts
  if 'D_ema' in sds:
    expected = torch_names.to_torch_state_dict(
        import_torch._zeros_like_tree(shapes['d_ema']), None, 'D')  # pylint: disable=protected-access
    import_torch._check_state_dict('D_ema', sds['D_ema'], expected)  # pylint: disable=protected-access
    d_ema = import_torch._like_template(  # pylint: disable=protected-access
        torch_names.from_torch_state_dict(sds['D_ema'], 'D')[0], shapes['d_ema'])
  else:
    warnings.warn('The pickle has no D_ema; it starts as D.')
    d_ema = state.d_params
  heads = {ours: head_from_torch(sds[theirs], theirs, shapes['heads'][ours])
           for ours, theirs in HEADS.items()}
  txs = family.head_optimizers(config)
  extra = {'heads': heads, 'head_opt': {n: txs[n].init(heads[n].params) for n in HEADS},
           'd_ema': d_ema}
  return state.replace(extra=extra), step


def transfer_extra(ref, state) -> tuple:
  """`config.train.resume_from` into an InsGen run (after import_torch.transfer_state): D_ema and
  the heads' tensors whose names and shapes match the pickle's are copied (what the reference's
  --resume means to do); D_ema falls back to the transferred D, a queue of another size starts
  fresh with its pointer. Returns (state, notes on what starts fresh)."""
  d_now = torch_names.to_torch_state_dict(jax.device_get(state.d_params), None, 'D')
  notes = []
  got = ref.state_dicts.get('D_ema') or {}
  kept = {k for k, v in d_now.items() if k in got and np.shape(got[k]) == v.shape}
  if len(kept) < len(d_now):
    notes.append(f'D_ema entries that start as the transferred D: '
                 f'{"all" if not kept else sorted(set(d_now) - kept)}')
  merged = {k: np.asarray(got[k]) if k in kept else v for k, v in d_now.items()}
  d_ema = import_torch._like_template(  # pylint: disable=protected-access
      torch_names.from_torch_state_dict(merged, 'D')[0], state.d_params)
  heads = dict(state.extra['heads'])
  for ours, theirs in HEADS.items():
    fresh = head_to_torch(jax.device_get(heads[ours]))
    sd = ref.state_dicts.get(theirs) or {}
    kept = {k for k, v in fresh.items() if k in sd and np.shape(sd[k]) == v.shape}
    if 'queue' not in kept:
      kept.discard('queue_ptr')       # a queue of another size starts fresh, with its pointer
    if len(kept) < len(fresh):
      notes.append(f'{theirs} entries that start fresh: '
                   f'{"all" if not kept else sorted(set(fresh) - kept)}')
    merged = {k: np.asarray(sd[k]) if k in kept else v for k, v in fresh.items()}
    heads[ours] = head_from_torch(merged, theirs, heads[ours])
  return state.replace(extra={**state.extra, 'heads': heads, 'd_ema': d_ema}), notes
