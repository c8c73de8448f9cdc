"""Times the PyTorch interop at the full cifar preset (float32, CPU by default).

  python benchmarks/interop_speed.py [--seeds=64]

Prints: checkpoint -> network.pt export time and file size, network-snapshot.pkl -> dgan_jax run
import time (a pickle in the reference's persistence format, written here with stand-ins for the
reference's pickling hooks), and --mode=generate images/s (G_ema, const noise, after compile).
"""
import argparse
import collections
import pathlib
import pickle
import sys
import tempfile
import time
import types

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import cifar10  # noqa: E402
from dgan_jax import diffusion, export, generate, import_torch, run_dir  # noqa: E402
from dgan_jax.families import build_networks  # noqa: E402
from dgan_jax.train import create_train_state, make_optimizers  # noqa: E402


def random_cifar_state(config):
  nets = build_networks(config)
  g_tx, d_tx = make_optimizers(config)
  shapes = jax.eval_shape(lambda: create_train_state(config, nets, g_tx, d_tx))
  rng = np.random.default_rng(0)
  fill = lambda s: (jax.random.key(0) if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key)
                    else rng.standard_normal(s.shape).astype(s.dtype)
                    if np.issubdtype(s.dtype, np.floating) else np.zeros(s.shape, s.dtype))
  state = jax.tree.map(fill, shapes)
  ctrl = diffusion.init_state(jax.random.key(1), config.diffusion, 4)
  return state.replace(diffusion=ctrl, step=np.int32(1000), images_seen=np.int32(64000))


def reference_style_pickle(path, bundle):
  """network-snapshot.pkl layout: persistent objects (_reconstruct_persistent_obj(meta))."""
  import torch
  hook_module = types.ModuleType('torch_utils.persistence')

  def _reconstruct_persistent_obj(meta):
    raise AssertionError(meta)
  _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
  _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
  hook_module._reconstruct_persistent_obj = _reconstruct_persistent_obj
  sys.modules['torch_utils'] = types.ModuleType('torch_utils')
  sys.modules['torch_utils.persistence'] = hook_module

  class Obj:
    def __init__(self, state):
      self.state = state

    def __reduce__(self):
      return (_reconstruct_persistent_obj, (dict(type='class', version=6, class_name='Net',
                                                 module_src='', state=self.state),))

  def tree(sd, kwargs):
    new = lambda: dict(_parameters=collections.OrderedDict(), _buffers=collections.OrderedDict(),
                       _modules=collections.OrderedDict())
    root = new()
    for key, value in sd.items():
      *parts, name = key.split('.')
      node = root
      for part in parts:
        node = node['_modules'].setdefault(part, new())
      kind = '_buffers' if name in ('resample_filter', 'noise_const', 'w_avg') else '_parameters'
      node[kind][name] = torch.from_numpy(np.array(value))

    def wrap(state, kw):
      state['_modules'] = collections.OrderedDict((k, wrap(v, {}))
                                                  for k, v in state['_modules'].items())
      state['_init_kwargs'] = kw
      return Obj(state)
    return wrap(root, kwargs)
  p = bundle['progress']
  data = dict(G=tree(bundle['G'], bundle['G_kwargs']), D=tree(bundle['D'], bundle['D_kwargs']),
              G_ema=tree(bundle['G_ema'], bundle['G_kwargs']),
              training_set_kwargs=bundle['training_set_kwargs'],
              progress=dict(cur_nimg=torch.LongTensor([p['cur_nimg']]),
                            cur_p=torch.FloatTensor([p['cur_p']])))
  with open(path, 'wb') as f:
    pickle.dump(data, f)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--seeds', type=int, default=64)
  args = parser.parse_args()
  config = cifar10.get_config()
  config.model.mixed_precision = 'float32'
  print(f'JAX {jax.__version__} on {jax.default_backend()}, cifar preset (G 19.9M, D 23.1M params)')
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    run_dir.write_run(tmp / 'run', config, random_cifar_state(config), 1000)
    t = time.perf_counter()
    out = export.export_run(tmp / 'run', tmp / 'network.pt')
    print(f'export  checkpoint -> network.pt: {time.perf_counter() - t:6.1f} s, '
          f'{out.stat().st_size / 2**20:.0f} MiB')
    config_saved = run_dir.load_config(tmp / 'run')
    _, state = run_dir.restore_state(tmp / 'run', config_saved)
    reference_style_pickle(tmp / 'snap.pkl', export.bundle(config_saved, state))
    t = time.perf_counter()
    import_torch.import_pickle(tmp / 'snap.pkl', tmp / 'imported', config)
    print(f'import  network-snapshot.pkl -> run: {time.perf_counter() - t:6.1f} s')
    seeds = f'0-{args.seeds - 1}'
    generate.run(tmp / 'imported', '0-15', outdir=tmp / 'warm', interp_steps=0)   # compile
    t = time.perf_counter()
    generate.run(tmp / 'imported', seeds, outdir=tmp / 'gen', interp_steps=0)
    dt = time.perf_counter() - t
    print(f'generate {args.seeds} seeds (restore + PNGs + grid): {dt:6.1f} s, '
          f'{args.seeds / dt:.1f} images/s')


if __name__ == '__main__':
  main()
