"""Why a run resumed on another device count is not bitwise the run it continues (issue 14.10).

  PYTHONPATH=. python benchmarks/device_count_drift.py [--steps=500]

Runs the toy (configs/toy25.py:smoke shapes) on 1 and on 8 fake CPU devices from the same state and
prints: (1) the per-sub-batch gradients of the first step, computed on each device count, compared
bit for bit; (2) the summed gradient (what the step applies: a vmap over local sub-batches, then a
psum over devices) compared the same way; (3) the parameter drift of the full training step after
1, 10, 100, ... steps and the first step at which the controller's T differs; (4) the same run
twice on 8 devices (determinism control).
"""
import os
import sys

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
import jax  # noqa: E402

jax.config.update('jax_platforms', 'cpu')
jax.config.update('jax_num_cpu_devices', 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from configs import toy25  # noqa: E402
from dgan_jax import steps, train  # noqa: E402
from dgan_jax.data import device  # noqa: E402
from dgan_jax.families import build_networks  # noqa: E402

flags.DEFINE_integer('steps', 500, 'Training steps for the drift table.')
FLAGS = flags.FLAGS


def setup(config, n):
  mesh = steps.make_mesh(jax.devices()[:n])
  nets = build_networks(config)
  g_tx, d_tx = train.make_optimizers(config)
  rep = jax.sharding.NamedSharding(mesh, P())
  state = jax.jit(lambda: train.create_train_state(config, nets, g_tx, d_tx), out_shardings=rep)()
  return mesh, nets, g_tx, d_tx, state


def per_sub_and_summed_grads(config, n):
  """Gradients of the D real loss of every sub-batch (stacked) and their psum, on n devices."""
  mesh, nets, _, _, state = setup(config, n)
  batch = next(train.make_data_iterator(config, 0))
  bg = config.train.batch_gpu
  subs = config.train.batch_size // bg // n

  def local(d_params, x):
    x = x.reshape((subs, bg, 2))
    t = jnp.zeros((bg,), jnp.int32)
    c = jnp.zeros((bg, 0), jnp.float32)
    def loss(p, xs):
      return jnp.mean(jax.nn.softplus(-nets.discriminate(p, xs, c, t)))
    varying = jax.tree.map(lambda p: jax.lax.pcast(p, steps.AXIS, to='varying'), d_params)   # no implicit psum
    per_sub = jax.vmap(jax.grad(loss), in_axes=(None, 0))(varying, x)
    summed = jax.tree.map(lambda g: jax.lax.psum(jnp.sum(g, 0), steps.AXIS), per_sub)
    return per_sub, summed

  f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(steps.AXIS)),
                            out_specs=(P(steps.AXIS), P())))
  x = device.to_global({'image': batch['image']}, device.batch_sharding(mesh))['image']
  per_sub, summed = f(state.d_params, x)
  return jax.device_get(per_sub), jax.device_get(summed)


def run(config, n, num_steps, checkpoints):
  mesh, nets, g_tx, d_tx, state = setup(config, n)
  step_fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  update = steps.make_controller_update(config, mesh)
  data = train.make_data_iterator(config, 0)
  sharding = device.batch_sharding(mesh)
  out = {'T': []}
  for i in range(1, num_steps + 1):
    state, _ = step_fn(state, device.to_global(next(data), sharding))
    if i % config.diffusion.ada_interval == 0:
      state = update(state)
    jax.block_until_ready(state)   # Queued collectives stall XLA:CPU's in-process all-reduce.
    out['T'].append(int(state.diffusion.T))
    if i in checkpoints:
      out[i] = jax.device_get((state.g_params, state.d_params))
  return out


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def bitwise(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main(argv):
  del argv
  config = toy25.get_config('smoke')
  ps1, s1 = per_sub_and_summed_grads(config, 1)
  ps8, s8 = per_sub_and_summed_grads(config, 8)
  print('| quantity (first step) | 1 vs 8 devices bitwise equal | max abs difference |')
  print('|---|---|---|')
  print(f'| per-sub-batch gradients (8 sub-batches) | {bitwise(ps1, ps8)} | {max_diff(ps1, ps8):.3g} |')
  print(f'| host sum of those, same order | {bitwise(jax.tree.map(lambda g: g.sum(0), ps1), jax.tree.map(lambda g: g.sum(0), ps8))} | '
        f'{max_diff(jax.tree.map(lambda g: g.sum(0), ps1), jax.tree.map(lambda g: g.sum(0), ps8)):.3g} |')
  print(f'| in-graph sum (vmap + psum) | {bitwise(s1, s8)} | {max_diff(s1, s8):.3g} |')
  marks = sorted({m for m in (1, 10, 100, 200, 300, 400, 500, 1000, 2000) if m <= FLAGS.steps}
                 | {FLAGS.steps})
  one = run(config, 1, FLAGS.steps, marks)
  eight = run(config, 8, FLAGS.steps, marks)
  again = run(config, 8, FLAGS.steps, marks)
  print()
  print('| steps | max abs param difference, 1 vs 8 devices | 8 vs 8 devices (repeat) |')
  print('|---|---|---|')
  for m in marks:
    print(f'| {m} | {max_diff(one[m], eight[m]):.3g} | {max_diff(eight[m], again[m]):.3g} |')
  split = next((i + 1 for i, (a, b) in enumerate(zip(one['T'], eight['T'])) if a != b), None)
  print(f'\nFirst step where the diffusion T differs (1 vs 8 devices): {split}; '
        f'8 vs 8: {next((i + 1 for i, (a, b) in enumerate(zip(eight["T"], again["T"])) if a != b), None)}')


if __name__ == '__main__':
  from absl import app
  app.run(main)
