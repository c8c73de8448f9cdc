"""Training speed of dgan_jax against the authors' PyTorch code, side by side on this machine.

  python benchmarks/vs_reference.py [--reference=MIRROR] [--variant=small] [--batch=32]
                                    [--rounds=3] [--steps=3] [--torch-threads=N]

Both sides train the same CIFAR-10 networks (configs/cifar10.py with --variant; '' = the full cifar
preset) at the same batch on random images, in one process, alternately: reference, ours,
reference, ours, ... (`--rounds` of each), so load from other processes hits both alike. A round
times `--steps` plain iterations and one iteration with the lazy R1 (D reg) phase; the amortised
iteration is (15 plain + 1 R1) / 16 as R1 runs every 16 iterations, and s/kimg is that over the
batch. Excluded on both sides: compiling / the first (warm-up) iteration, and the loop's
maintenance (data loading, ticks, snapshots, metrics). Prints each side's median s/kimg and the
ratio reference / ours (median and range over the rounds).

The reference: `diffusion-stylegan2/{training,torch_utils,dnnlib}` extracted with `git archive`
from the mirror (`--reference`, default $DGAN_REFERENCE_REPO or the mirror beside the checkout)
into a temp dir, never modified. Its training loop itself (training_loop.py) is not run (it
hard-codes CUDA: the device, pinned memory, CUDA events); this script runs the same iteration on
the CPU through the reference's own classes: `StyleGAN2Loss.accumulate_gradients` for the phases
Gmain, Greg (a no-op for cifar: pl_weight 0), Dmain and Dreg every 16 iterations, each over
batch_gpu rounds with the phase's Adam step (lr and betas rescaled by the lazy-regularisation
ratio, NaN gradients zeroed), the `Diffusion` module as augment pipe, then the G_ema update. The
reference's custom CUDA ops fall back to their plain-torch versions on a CPU; the one patch it needs
is `np.int` aliased to int (removed in numpy 1.24; tests/reference_code.numpy_aliases), applied
in this process, the files untouched. Both sides run
float32 (the reference with num_fp16_res=0, as its --fp32; ours 'auto' = float32 on a CPU).
The controller updates (every 4 iterations, about 2 ms for ours) are left out on both sides.
"""
import argparse
import contextlib
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # noqa: E402

R1_INTERVAL = 16
_KEEP = contextlib.ExitStack()   # Contexts open for the whole script.


def make_config(variant: str, batch: int):
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config(variant or None)
  config.train.batch_size = batch
  config.train.batch_gpu = min(config.train.batch_gpu, batch)
  config.model.mixed_precision = 'float32'
  if config.loss.r1_interval != R1_INTERVAL or config.loss.pl_weight:
    raise SystemExit(f'this comparison assumes lazy R1 every {R1_INTERVAL} and no path-length '
                     'regularisation (the cifar preset)')
  return config


# --- Ours ------------------------------------------------------------------------------------------


def ours(config):
  """A function running one training iteration of dgan_jax (`with_r1`: the lazy R1 one)."""
  import jax  # pylint: disable=import-outside-toplevel
  from dgan_jax import steps, train  # pylint: disable=import-outside-toplevel
  from dgan_jax.data import device  # pylint: disable=import-outside-toplevel
  from dgan_jax.families import build_networks  # pylint: disable=import-outside-toplevel
  mesh = steps.make_mesh(jax.devices()[:1])
  nets = build_networks(config)
  g_tx, d_tx = train.make_optimizers(config)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(lambda: train.create_train_state(config, nets, g_tx, d_tx),
                  out_shardings=replicated)()
  res, batch = config.data.resolution, config.train.batch_size
  data = device.to_global(
      {'image': np.random.default_rng(0).integers(0, 256, (batch, res, res, 3), dtype=np.uint8),
       'label': np.zeros((batch, 0), np.float32)}, device.batch_sharding(mesh))
  fns = {r1: steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases(r1=r1))
         for r1 in (False, True)}
  holder = {'state': state}

  def iteration(with_r1: bool):
    holder['state'], _ = fns[with_r1](holder['state'], data)
    jax.block_until_ready(holder['state'])
  return iteration


# --- The reference -------------------------------------------------------------------------------


def reference(config, mirror: str | None):
  """The same iteration with the reference's classes (see the module docstring)."""
  import torch  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(REPO / 'tests'))
  if mirror:
    os.environ['DGAN_REFERENCE_REPO'] = mirror
  import reference_code  # pylint: disable=import-outside-toplevel
  from dgan_jax.interop import reference_config  # pylint: disable=import-outside-toplevel
  # Today's numpy lacks np.int (Diffusion.update_T): aliased for the whole script, which calls it.
  _KEEP.enter_context(reference_code.numpy_aliases())
  if not reference_code.available():
    raise SystemExit(f'no reference mirror at {reference_code.REFERENCE_MIRROR} (--reference=PATH)')
  root = reference_code.extract(['diffusion-stylegan2/training', 'diffusion-stylegan2/torch_utils',
                                 'diffusion-stylegan2/dnnlib'])
  sys.path.insert(0, str(root / 'diffusion-stylegan2'))
  from training import diffusion as ref_diffusion  # pylint: disable=import-outside-toplevel
  from training import loss as ref_loss  # pylint: disable=import-outside-toplevel
  from training import networks  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  dev = torch.device('cpu')
  g_kwargs = reference_config.generator_kwargs(config)
  d_kwargs = reference_config.discriminator_kwargs(config)
  g_kwargs['synthesis_kwargs']['num_fp16_res'] = 0   # float32, as the reference's --fp32 (and
  d_kwargs['num_fp16_res'] = 0                       # ours on a CPU).
  G = networks.Generator(**g_kwargs).train().requires_grad_(False).to(dev)
  D = networks.Discriminator(**d_kwargs).train().requires_grad_(False).to(dev)
  G_ema = networks.Generator(**g_kwargs).eval().requires_grad_(False).to(dev)
  G_ema.load_state_dict(G.state_dict())
  dc = config.diffusion
  diffusion = ref_diffusion.Diffusion(
      beta_schedule=dc.beta_schedule, beta_start=dc.beta_start, beta_end=dc.beta_end,
      t_min=dc.t_min, t_max=dc.t_max, noise_std=dc.noise_std, aug='no',
      ts_dist=dc.ts_dist).train().requires_grad_(False).to(dev)
  loss = ref_loss.StyleGAN2Loss(dev, G.mapping, G.synthesis, D, Diffusion=diffusion,
                                style_mixing_prob=0, r1_gamma=config.loss.r1_gamma, pl_weight=0)
  o = config.optim
  phases = []
  for name, module, lr, interval in (('G', G, o.g_lr, config.loss.pl_interval),
                                     ('D', D, o.d_lr, R1_INTERVAL)):
    ratio = interval / (interval + 1)
    opt = torch.optim.Adam(module.parameters(), lr=lr * ratio,
                           betas=[o.b1 ** ratio, o.b2 ** ratio], eps=o.eps)
    phases += [(name + 'main', module, opt, 1), (name + 'reg', module, opt, interval)]
  batch, batch_gpu, res = config.train.batch_size, config.train.batch_gpu, config.data.resolution
  reals = torch.rand(batch, 3, res, res) * 2 - 1
  c = torch.zeros(batch, G.c_dim)
  ema_beta = 0.5 ** (batch / (config.train.ema_kimg * 1000))

  def iteration(with_r1: bool):
    # The R1 iteration (every 16th) is also one of Greg's (every 4th; at pl_weight 0 only an empty
    # optimizer step, left out of the plain iterations).
    names = ('Gmain', 'Greg', 'Dmain', 'Dreg') if with_r1 else ('Gmain', 'Dmain')
    for name, module, opt, interval in phases:
      if name not in names:
        continue
      opt.zero_grad(set_to_none=True)
      module.requires_grad_(True)
      z = torch.randn(batch, G.z_dim)
      rounds = batch // batch_gpu
      for i, (real, real_c, gen_z, gen_c) in enumerate(zip(
          reals.split(batch_gpu), c.split(batch_gpu), z.split(batch_gpu), c.split(batch_gpu))):
        loss.accumulate_gradients(phase=name, real_img=real, real_c=real_c, gen_z=gen_z,
                                  gen_c=gen_c, sync=i == rounds - 1, gain=interval)
      module.requires_grad_(False)
      for param in module.parameters():
        if param.grad is not None:
          torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
      opt.step()
    with torch.no_grad():
      for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
      for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
  return iteration, f'torch {torch.__version__}, {torch.get_num_threads()} threads'


# --- Timing ----------------------------------------------------------------------------------------


def time_round(iteration, steps: int) -> float:
  """Amortised seconds per iteration: median of `steps` plain ones and one R1 one."""
  plain = []
  for _ in range(steps):
    t0 = time.perf_counter()
    iteration(False)
    plain.append(time.perf_counter() - t0)
  t0 = time.perf_counter()
  iteration(True)
  r1 = time.perf_counter() - t0
  return ((R1_INTERVAL - 1) * float(np.median(plain)) + r1) / R1_INTERVAL


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--reference', default=None, help='the reference git mirror (bare repo)')
  parser.add_argument('--variant', default='small', help="configs/cifar10.py variant ('' = full)")
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=3, help='plain iterations per round')
  parser.add_argument('--torch-threads', type=int, default=0, help='0: torch default')
  args = parser.parse_args()
  config = make_config(args.variant, args.batch)
  if args.torch_threads:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(args.torch_threads)
  import jax  # pylint: disable=import-outside-toplevel
  ref_iteration, ref_info = reference(config, args.reference)
  our_iteration = ours(config)
  t0 = time.perf_counter()
  for fn in (ref_iteration, our_iteration):   # warm-up: compiling (ours), first calls (both)
    fn(False)
    fn(True)
  print(f'cifar10:{args.variant or "full"} batch {args.batch} (batch_gpu {config.train.batch_gpu}); '
        f'reference: {ref_info}; ours: JAX {jax.__version__} {jax.default_backend()}, 1 device; '
        f'warm-up {time.perf_counter() - t0:.0f} s', flush=True)
  ref_t, our_t = [], []
  for r in range(args.rounds):
    ref_t.append(time_round(ref_iteration, args.steps))
    our_t.append(time_round(our_iteration, args.steps))
    print(f'round {r + 1}: reference {1000 * ref_t[-1] / args.batch:.1f} s/kimg, ours '
          f'{1000 * our_t[-1] / args.batch:.1f} s/kimg, ratio {ref_t[-1] / our_t[-1]:.2f}', flush=True)
  ratios = [a / b for a, b in zip(ref_t, our_t)]
  kimg = lambda t: 1000 * float(np.median(t)) / args.batch
  print(f'reference {kimg(ref_t):.1f} s/kimg, ours {kimg(our_t):.1f} s/kimg (medians of '
        f'{args.rounds} rounds); reference / ours = {np.median(ratios):.2f} '
        f'(range {min(ratios):.2f}-{max(ratios):.2f})')


if __name__ == '__main__':
  main()
