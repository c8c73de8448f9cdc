"""Training speed of dgan_jax against the authors' PyTorch code, side by side on this machine.

  python benchmarks/vs_reference.py [--family=stylegan2|projected] [--reference=MIRROR]
                                    [--variant=small] [--batch=N] [--rounds=3] [--steps=3]
                                    [--torch-threads=N] [--torch-device=cpu|cuda]

Both sides train the same CIFAR-10 networks at the same batch on random images, in one process,
alternately: reference, ours, reference, ours, ... (`--rounds` of each), so load from other
processes hits both alike. Excluded on both sides: compiling / the first (warm-up) iteration,
and the loop's maintenance (data loading, ticks, snapshots, metrics). Prints each side's median
s/kimg and the ratio reference / ours (median and range over the rounds).

--torch-device=cuda runs the reference on the GPU beside ours (JAX's default device), waiting for
its queued work at the end of each iteration; benchmarks/device_check.sh runs both families so.
On CUDA the reference's stylegan2 ops (bias_act, upfirdn2d) are its own CUDA kernels, built on
first use: torch 2 no longer lists the built module where the reference's `custom_ops` imports it
from, so this script registers it (in this process, the files untouched); without that the
reference would fall back to its plain-torch ops. The printed setup names the ops that loaded.

--family=stylegan2 (default): Diffusion-StyleGAN2, configs/cifar10.py with --variant ('' = the
full cifar preset), batch 32 by default. A round times `--steps` plain iterations and one
iteration with the lazy R1 (D reg) phase; the amortised iteration is (15 plain + 1 R1) / 16 as R1
runs every 16 iterations, and s/kimg is that over the batch.
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

--family=projected: Diffusion-ProjectedGAN, configs/cifar10_projected.py with --variant
('small' = FastGAN ngf 16, batch 16 in sub-batches of 8; '' = the paper's ngf 128, batch 64 in
16s), the config's batch unless --batch; the backbone has RANDOM weights on both sides (no
internet here: ours `model.projected.backbone='random'`, the reference's timm model built with
pretrained=False), which changes no cost. A round times `--steps` iterations (there is no
regularisation phase). The reference: `diffusion-projected-gan/{training/loss.py,pg_modules,
torch_utils,dnnlib}` extracted into a temp dir; networks from our export's `G_kwargs` / `D_kwargs`
(train.py's: FastGAN G, ProjectedDiscriminator with diffaug, interp224, d_pos 'first', noise_sd
0.5, cout 64, expand, proj_type 2, 4 discs), built with the reference's `construct_class_by_name`;
one iteration = training_loop.py's phases run through `ProjectedGANLoss.accumulate_gradients`:
'Gboth' (G_reg_interval None: G's plain Adam, lr 2e-4, betas (0, 0.99)) and 'Dmain' (D's Adam
with lr x 16/17 and betas ** (16/17); `feature_network.requires_grad_(False)`), each over
batch_gpu rounds with fresh z, gradients flattened and NaN-zeroed as the loop does, then the
G_ema update. Left out on both sides: 'Dreg' every 16 iterations (accumulate_gradients returns at
once and the optimizer step has no gradients) and the diffusion controller every 4 (the
reference's `update_T`, ours' controller update). Patches, applied in this process only
(tests/reference_code._shims; the files untouched): `timm.create_model(..., pretrained=True)`
builds random weights instead of downloading; timm >= 0.9 folds the stem's ReLU6 into `bn1` and
has no `act1`, so an `nn.Identity` stands in (the reference's `_make_efficientnet` reads
`model.act1`); `np.int` aliased to int; and torchvision's op registrations, which fail on this
torch build, are stubbed before timm imports (tests/projected_helpers.import_timm). Both sides
float32.
"""
import argparse
import contextlib
import copy
import importlib.util
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # noqa: E402

R1_INTERVAL = 16
FAMILIES = ('stylegan2', 'projected')
DEFAULT_BATCH = {'stylegan2': 32}     # projected: the variant's config batch.
_KEEP = contextlib.ExitStack()   # Contexts open for the whole script.


def make_config(family: str, variant: str, batch: int | None):
  """Our config for the comparison; bad settings are a SystemExit naming the fix."""
  if family not in FAMILIES:
    raise SystemExit(f'--family={family!r} is unknown; use one of {FAMILIES}.')
  if batch is not None and batch < 1:
    raise SystemExit(f'--batch={batch} must be >= 1.')
  try:
    if family == 'stylegan2':
      from configs import cifar10  # pylint: disable=import-outside-toplevel
      config = cifar10.get_config(variant or None)
    else:
      from configs import cifar10_projected  # pylint: disable=import-outside-toplevel
      config = cifar10_projected.get_config(variant or None)
      config.model.projected.backbone = 'random'      # as the reference's pretrained=False
  except ValueError as e:
    raise SystemExit(f'--variant={variant!r}: {e}') from e
  batch = batch or DEFAULT_BATCH.get(family) or config.train.batch_size
  config.train.batch_size = batch
  config.train.batch_gpu = min(config.train.batch_gpu, batch)
  if batch % config.train.batch_gpu:
    raise SystemExit(f'--batch={batch} is not a multiple of the sub-batch (batch_gpu '
                     f'{config.train.batch_gpu}); use a multiple of it, or a batch <= it.')
  if family == 'stylegan2':
    config.model.mixed_precision = 'float32'
    if config.loss.r1_interval != R1_INTERVAL or config.loss.pl_weight:
      raise SystemExit(f'this comparison assumes lazy R1 every {R1_INTERVAL} and no path-length '
                       'regularisation (the cifar preset)')
  return config


def has_lazy_r1(config) -> bool:
  """Whether the config has the lazy R1 phase (Diffusion-StyleGAN2; the projected family has none)."""
  return config.loss.r1_gamma > 0


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
         for r1 in ((False, True) if has_lazy_r1(config) else (False,))}
  holder = {'state': state}

  def iteration(with_r1: bool):
    holder['state'], _ = fns[with_r1](holder['state'], data)
    jax.block_until_ready(holder['state'])
  return iteration


# --- The reference -------------------------------------------------------------------------------


def _reference_code(mirror: str | None):
  """tests/reference_code.py, pointed at `mirror`; a SystemExit when the mirror is missing."""
  sys.path.insert(0, str(REPO / 'tests'))
  if mirror:
    os.environ['DGAN_REFERENCE_REPO'] = mirror
  import reference_code  # pylint: disable=import-outside-toplevel
  if not reference_code.available():
    raise SystemExit(f'no reference mirror at {reference_code.REFERENCE_MIRROR} (--reference=PATH)')
  return reference_code


def reference(config, mirror: str | None, torch_device: str = 'cpu'):
  """The reference's iteration for the config's family (see the module docstring)."""
  if config.model.family == 'stylegan2':
    return reference_stylegan2(config, mirror, torch_device)
  return reference_projected(config, mirror, torch_device)


def _torch_device(name: str):
  """(torch device, function that waits for its queued work): the timings need the wait on CUDA."""
  import torch  # pylint: disable=import-outside-toplevel
  dev = torch.device(name)
  if dev.type == 'cuda':
    if not torch.cuda.is_available():
      raise SystemExit(f'--torch-device={name}: torch sees no CUDA device; use --torch-device=cpu.')
    return dev, lambda: torch.cuda.synchronize(dev)
  return dev, lambda: None


@contextlib.contextmanager
def _plugins_importable():
  """The reference's `custom_ops.get_plugin` builds its CUDA ops (bias_act, upfirdn2d) with
  `torch.utils.cpp_extension.load` and then imports them by name; torch 2 no longer puts the built
  module in sys.modules, so that import fails and the reference silently falls back to its slow
  plain-torch ops. While this is open the loaded module is registered under its name (this process
  only; the files untouched), so the reference runs with its own CUDA kernels, as its authors ran it."""
  from torch.utils import cpp_extension  # pylint: disable=import-outside-toplevel
  load = cpp_extension.load

  def registering_load(name, *args, **kwargs):
    module = load(name, *args, **kwargs)
    sys.modules.setdefault(name, module)
    return module
  cpp_extension.load = registering_load
  try:
    yield
  finally:
    cpp_extension.load = load


def cuda_plugins() -> str:
  """Which of the reference's CUDA ops are loaded (after its first iteration)."""
  loaded = [name for name in ('bias_act_plugin', 'upfirdn2d_plugin') if name in sys.modules]
  return ', '.join(loaded) if loaded else 'none (plain-torch fallback)'


def reference_stylegan2(config, mirror: str | None, torch_device: str = 'cpu'):
  """Diffusion-StyleGAN2's iteration with the reference's classes."""
  import torch  # pylint: disable=import-outside-toplevel
  reference_code = _reference_code(mirror)
  from dgan_jax.interop import reference_config  # pylint: disable=import-outside-toplevel
  # Today's numpy lacks np.int (Diffusion.update_T): aliased for the whole script, which calls it.
  _KEEP.enter_context(reference_code.numpy_aliases())
  root = reference_code.extract(['diffusion-stylegan2/training', 'diffusion-stylegan2/torch_utils',
                                 'diffusion-stylegan2/dnnlib'])
  sys.path.insert(0, str(root / 'diffusion-stylegan2'))
  from training import diffusion as ref_diffusion  # pylint: disable=import-outside-toplevel
  from training import loss as ref_loss  # pylint: disable=import-outside-toplevel
  from training import networks  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  dev, wait = _torch_device(torch_device)
  if dev.type == 'cuda':
    _KEEP.enter_context(_plugins_importable())
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
  reals = torch.rand(batch, 3, res, res, device=dev) * 2 - 1
  c = torch.zeros(batch, G.c_dim, device=dev)
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
      z = torch.randn(batch, G.z_dim, device=dev)
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
    update_ema(G_ema, G, ema_beta)
    wait()
  return iteration, f'torch {torch.__version__} on {_device_name(dev)}'


def reference_projected(config, mirror: str | None, torch_device: str = 'cpu'):
  """Diffusion-ProjectedGAN's iteration with the reference's classes (training_loop.py's phase
  loop for 'Gboth' and 'Dmain', ProjectedGANLoss, pg_modules' networks)."""
  import torch  # pylint: disable=import-outside-toplevel
  reference_code = _reference_code(mirror)
  if importlib.util.find_spec('timm') is None:
    raise SystemExit('the projected reference needs timm (its EfficientNet-lite0 backbone): '
                     'pip install timm')
  from dgan_jax.families import projected  # pylint: disable=import-outside-toplevel
  root = reference_code.extract(['diffusion-projected-gan/training/loss.py'])
  # pg_modules, torch_utils and dnnlib beside it, importable, with the patches of the docstring.
  _KEEP.enter_context(reference_code.projected_reference(root))
  import timm  # pylint: disable=import-outside-toplevel
  from dnnlib import util  # pylint: disable=import-outside-toplevel
  from training import loss as ref_loss  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  np.random.seed(0)
  dev, wait = _torch_device(torch_device)
  kwargs = projected.FAMILY.export_kwargs(config, with_d=True)
  G = util.construct_class_by_name(**kwargs['G_kwargs']).train().requires_grad_(False).to(dev)
  D = util.construct_class_by_name(**kwargs['D_kwargs']).train().requires_grad_(False).to(dev)
  G_ema = copy.deepcopy(G).eval()
  loss = ref_loss.ProjectedGANLoss(device=dev, G=G, D=D, G_ema=G_ema)
  o = config.optim
  ratio = config.loss.r1_interval / (config.loss.r1_interval + 1)    # D_reg_interval 16
  phases = [('Gboth', G, torch.optim.Adam(G.parameters(), lr=o.g_lr, betas=[o.b1, o.b2],
                                          eps=o.eps)),
            ('Dmain', D, torch.optim.Adam(D.parameters(), lr=o.d_lr * ratio,
                                          betas=[o.b1 ** ratio, o.b2 ** ratio], eps=o.eps))]
  batch, batch_gpu, res = config.train.batch_size, config.train.batch_gpu, config.data.resolution
  reals = (torch.rand(batch, 3, res, res, device=dev) * 2 - 1).split(batch_gpu)
  c = torch.zeros(batch, G.c_dim, device=dev).split(batch_gpu)
  ema_beta = 0.5 ** (batch / (config.train.ema_kimg * 1000))
  progress = {'nimg': 0}

  def iteration(with_r1: bool):
    del with_r1
    for name, module, opt in phases:
      opt.zero_grad(set_to_none=True)
      module.requires_grad_(True)
      if name == 'Dmain':
        module.feature_network.requires_grad_(False)
      z = torch.randn(batch, G.z_dim, device=dev).split(batch_gpu)
      for real, real_c, gen_z, gen_c in zip(reals, c, z, c):
        loss.accumulate_gradients(phase=name, real_img=real, real_c=real_c, gen_z=gen_z,
                                  gen_c=gen_c, gain=1, cur_nimg=progress['nimg'])
      module.requires_grad_(False)
      params = [param for param in module.parameters() if param.grad is not None]
      flat = torch.cat([param.grad.flatten() for param in params])
      torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
      for param, grad in zip(params, flat.split([param.numel() for param in params])):
        param.grad = grad.reshape(param.shape)
      opt.step()
    update_ema(G_ema, G, ema_beta)
    wait()
    progress['nimg'] += batch
  return iteration, f'torch {torch.__version__}, timm {timm.__version__} on {_device_name(dev)}'


def _device_name(dev) -> str:
  import torch  # pylint: disable=import-outside-toplevel
  if dev.type == 'cuda':
    return torch.cuda.get_device_name(dev)
  return f'the CPU, {torch.get_num_threads()} threads'


def update_ema(G_ema, G, beta: float) -> None:
  """The reference loop's G_ema update: parameters lerped, buffers copied."""
  import torch  # pylint: disable=import-outside-toplevel
  with torch.no_grad():
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
      p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
      b_ema.copy_(b)


# --- Timing ----------------------------------------------------------------------------------------


def time_round(iteration, steps: int, lazy_r1: bool = True) -> float:
  """Amortised seconds per iteration: median of `steps` plain ones and, with `lazy_r1`, one R1
  one weighted 1 in R1_INTERVAL."""
  plain = []
  for _ in range(steps):
    t0 = time.perf_counter()
    iteration(False)
    plain.append(time.perf_counter() - t0)
  if not lazy_r1:
    return float(np.median(plain))
  t0 = time.perf_counter()
  iteration(True)
  r1 = time.perf_counter() - t0
  return ((R1_INTERVAL - 1) * float(np.median(plain)) + r1) / R1_INTERVAL


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--family', default='stylegan2', choices=FAMILIES)
  parser.add_argument('--reference', default=None, help='the reference git mirror (bare repo), or a tar of its HEAD')
  parser.add_argument('--variant', default='small',
                      help="config variant ('' = full): configs/cifar10.py or cifar10_projected.py")
  parser.add_argument('--batch', type=int, default=None,
                      help='stylegan2: 32 by default; projected: the variant\'s batch')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=3, help='plain iterations per round')
  parser.add_argument('--torch-threads', type=int, default=0, help='0: torch default')
  parser.add_argument('--torch-device', default='cpu',
                      help="the reference's device: 'cpu', or 'cuda' beside ours on a GPU")
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.steps < 1:
    parser.error(f'--rounds={args.rounds} and --steps={args.steps} must be >= 1.')
  return args


def main(argv=None):
  args = parse_args(argv)
  with _KEEP:     # the reference's patches undone and its packages forgotten at the end
    return run(args)


def run(args):
  config = make_config(args.family, args.variant, args.batch)
  batch, lazy_r1 = config.train.batch_size, has_lazy_r1(config)
  if args.torch_threads:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(args.torch_threads)
  import jax  # pylint: disable=import-outside-toplevel
  ref_iteration, ref_info = reference(config, args.reference, args.torch_device)
  our_iteration = ours(config)
  t0 = time.perf_counter()
  for fn in (ref_iteration, our_iteration):   # warm-up: compiling (ours), first calls (both)
    fn(False)
    if lazy_r1:
      fn(True)
  name = 'cifar10' if args.family == 'stylegan2' else 'cifar10_projected'
  if args.family == 'stylegan2' and args.torch_device.startswith('cuda'):
    ref_info += f'; its CUDA ops: {cuda_plugins()}'
  print(f'{name}:{args.variant or "full"} batch {batch} (batch_gpu {config.train.batch_gpu}); '
        f'reference: {ref_info}; ours: JAX {jax.__version__} {jax.default_backend()}, 1 device; '
        f'warm-up {time.perf_counter() - t0:.0f} s', flush=True)
  ref_t, our_t = [], []
  for r in range(args.rounds):
    ref_t.append(time_round(ref_iteration, args.steps, lazy_r1))
    our_t.append(time_round(our_iteration, args.steps, lazy_r1))
    print(f'round {r + 1}: reference {1000 * ref_t[-1] / batch:.1f} s/kimg, ours '
          f'{1000 * our_t[-1] / batch:.1f} s/kimg, ratio {ref_t[-1] / our_t[-1]:.2f}', flush=True)
  ratios = [a / b for a, b in zip(ref_t, our_t)]
  kimg = lambda t: 1000 * float(np.median(t)) / batch
  print(f'reference {kimg(ref_t):.1f} s/kimg, ours {kimg(our_t):.1f} s/kimg (medians of '
        f'{args.rounds} rounds); reference / ours = {np.median(ratios):.2f} '
        f'(range {min(ratios):.2f}-{max(ratios):.2f})')
  return {'config': f'{name}:{args.variant or "full"}', 'batch': batch, 'reference': ref_info,
          'ours': f'JAX {jax.__version__} {jax.default_backend()}',
          'reference_s_per_kimg': kimg(ref_t), 'ours_s_per_kimg': kimg(our_t),
          'ratio_median': float(np.median(ratios)), 'ratios': ratios}


if __name__ == '__main__':
  main()
