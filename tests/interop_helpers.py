"""Run directories, train states and reference-like pickles for the interop tests (small configs,
perturbed weights; pickles in the reference's persistence format without the reference code)."""
import collections
import functools
import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

from configs import cifar10
from dgan_jax import diffusion, run_dir
from dgan_jax.families import build_networks
from dgan_jax.train import create_train_state, make_optimizers


def config_for(variant: str | None = 'smoke', c_dim: int = 0):
  """A cifar10 config (variant), float32 compute (exactness), `c_dim` classes."""
  config = cifar10.get_config(variant)
  config.model.mixed_precision = 'float32'
  config.model.c_dim = c_dim
  config.data.use_labels = c_dim > 0
  return config


def random_state(config, seed: int = 0):
  """A TrainState of the config's shapes filled with random numbers (no forward pass: fast)."""
  nets = build_networks(config)
  g_tx, d_tx = make_optimizers(config)
  shapes = jax.eval_shape(lambda: create_train_state(config, nets, g_tx, d_tx))
  rng = np.random.default_rng(seed)

  def fill(s):
    if jnp.issubdtype(s.dtype, jax.dtypes.prng_key):
      return jax.random.key(seed)
    if jnp.issubdtype(s.dtype, jnp.floating):
      return rng.standard_normal(s.shape).astype(s.dtype)
    return np.zeros(s.shape, s.dtype)
  state = jax.tree.map(fill, shapes)
  num_pools = config.train.batch_size // config.train.batch_gpu   # a valid controller (p = 0)
  return nets, state.replace(diffusion=diffusion.init_state(jax.random.key(seed), config.diffusion,
                                                            num_pools))


def make_run(workdir, config, seed: int = 0, step: int = 7):
  """A run directory with one checkpoint of a random state at `step`; returns (nets, state)."""
  nets, state = random_state(config, seed)
  state = state.replace(step=np.asarray(step, np.int32),
                        images_seen=np.asarray(step * config.train.batch_size, np.int32))
  run_dir.write_run(workdir, config, state, step)
  return nets, state


def jax_images(nets, state, z, c, psi=1.0, cutoff=None, params='g_ema_params'):
  """NHWC float32 images of the dgan_jax generator with const noise (psi traced: one compile)."""
  variables = {'params': getattr(state, params), 'buffers': state.g_buffers}
  out = _apply(nets.G, cutoff)(variables, jnp.asarray(z, jnp.float32), jnp.asarray(c, jnp.float32),
                               jnp.float32(psi))
  return np.asarray(out)


@functools.cache
def _apply(generator, cutoff):
  return jax.jit(lambda v, z, c, psi: generator.apply(v, z, c, truncation_psi=psi,
                                                        truncation_cutoff=cutoff,
                                                        noise_mode='const'))


# --- Pickles that mimic torch_utils.persistence (no reference code needed) ----------------------

BUFFERS = ('resample_filter', 'noise_const', 'w_avg', 'queue', 'queue_ptr')
# Snapshot entry -> (its constructor kwargs in an export bundle, the reference's class name).
NETWORKS = {'G': ('G_kwargs', 'Generator'), 'D': ('D_kwargs', 'Discriminator'),
            'G_ema': ('G_kwargs', 'Generator'), 'D_ema': ('D_kwargs', 'Discriminator'),
            'DHead': ('DHead_kwargs', 'CLHead'), 'GHead': ('GHead_kwargs', 'CLHead')}


def install_fake_reference_modules(monkeypatch):
  """Importable stand-ins for torch_utils.persistence and dnnlib.util, so pickle.dump records the
  reference's global names. Their reconstruct hook fails loudly: the import must never call it."""
  persistence = types.ModuleType('torch_utils.persistence')

  def _reconstruct_persistent_obj(meta):
    raise AssertionError(f'executed the persistence hook for {meta["class_name"]}')
  _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
  _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
  persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
  util = types.ModuleType('dnnlib.util')

  class EasyDict(dict):
    pass
  EasyDict.__module__, EasyDict.__qualname__ = 'dnnlib.util', 'EasyDict'
  util.EasyDict = EasyDict
  for name, module in (('torch_utils', types.ModuleType('torch_utils')),
                       ('torch_utils.persistence', persistence),
                       ('dnnlib', types.ModuleType('dnnlib')), ('dnnlib.util', util)):
    monkeypatch.setitem(sys.modules, name, module)
  return types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)


def _torch():
  """torch when installed (pickles then hold tensors, as the reference's), else None (numpy)."""
  module = sys.modules.get('torch', False)
  if module is None:                 # a test hid torch (monkeypatch.setitem(sys.modules, ...))
    return None
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return torch


class FakePersistent:
  """Pickles like a reference persistent object: `_reconstruct_persistent_obj(meta)`."""

  def __init__(self, hook, class_name, state):
    self.hook, self.class_name, self.state = hook, class_name, state

  def __reduce__(self):
    meta = dict(type='class', version=6, class_name=self.class_name, state=self.state,
                module_src='raise SystemExit("the pickled source must never run")')
    return (self.hook, (meta,))


def fake_network(fake, class_name, state_dict, init_kwargs):
  """A FakePersistent tree whose torch state_dict would be `state_dict` (torch tensors when torch
  is installed, numpy arrays otherwise: the importer reads both)."""
  torch = _torch()

  def node():
    return {'_parameters': collections.OrderedDict(), '_buffers': collections.OrderedDict(),
            '_modules': collections.OrderedDict(), '_non_persistent_buffers_set': set(),
            'training': False}
  root = node()
  for key, value in state_dict.items():
    *path, name = key.split('.')
    cur = root
    for part in path:
      cur = cur['_modules'].setdefault(part, node())
    tensor = np.array(value, copy=True)
    if torch is not None:
      tensor = torch.from_numpy(tensor)
    if name in BUFFERS:
      cur['_buffers'][name] = tensor
    else:
      cur['_parameters'][name] = (tensor if torch is None else
                                  torch.nn.Parameter(tensor, requires_grad=False))
  scratch = np.ones(3, np.float32)            # non-persistent: not in the state dict
  root['_buffers']['scratch'] = scratch if torch is None else torch.from_numpy(scratch)
  root['_non_persistent_buffers_set'].add('scratch')

  def wrap(state, name, kwargs):
    state['_modules'] = collections.OrderedDict(
        (k, wrap(v, k, {})) for k, v in state['_modules'].items())
    state['_init_args'], state['_init_kwargs'] = (), fake.EasyDict(kwargs)
    return FakePersistent(fake.reconstruct, name, state)
  return wrap(root, class_name, init_kwargs)


def mimic_pickle(path, fake, bundle, protocol=4, drop=(), progress=True, entries=None):
  """A network-snapshot.pkl-like file for an export bundle (numpy state dicts + kwargs): its
  networks (NETWORKS present in the bundle), a Diffusion module, progress and `entries` (replacing
  or adding top-level entries). `drop` leaves out state-dict keys ('G.mapping.fc1.bias') or whole
  networks ('GHead')."""
  torch = _torch()
  data = {'training_set_kwargs': fake.EasyDict(bundle['training_set_kwargs'])}
  for name, (kwargs, class_name) in NETWORKS.items():
    if name not in bundle or name in drop:
      continue
    sd = {k: v for k, v in bundle[name].items() if f'{name}.{k}' not in drop}
    data[name] = fake_network(fake, class_name, sd, bundle[kwargs])
  data['diffusion'] = FakePersistent(fake.reconstruct, 'Diffusion',
                                     {'p': 0.25, 'betas': np.linspace(1e-4, 2e-2, 10)})
  if progress:
    p = bundle['progress']

    def tensor(value, dtype):
      array = np.asarray([value], dtype)
      return array if torch is None else torch.from_numpy(array)
    data['progress'] = {'cur_nimg': tensor(p['cur_nimg'], np.int64),
                        'cur_tick': tensor(p['cur_tick'], np.int64),
                        'cur_p': tensor(p['cur_p'], np.float32),
                        'batch_idx': tensor(p['batch_idx'], np.int64), 'best_fid': 12.5}
  data.update(entries or {})
  with open(path, 'wb') as f:
    pickle.dump(data, f, protocol=protocol)
  return path
