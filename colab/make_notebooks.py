"""Writes colab/toy25.ipynb, train_cifar10.ipynb and pretrained.ipynb: the one source of their cells.

The setup cells (find or clone the checkout, install with the runtime's extra, device check) are
the same in every notebook and are written once here. Edit this file, then run
  python colab/make_notebooks.py
tests/test_notebooks.py checks that the committed notebooks are what this script writes.
"""
import pathlib
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent

COMMON_PARAMS = '''\
REPO_URL = 'https://github.com/YOUR_ACCOUNT/dgan_jax.git'  # the dgan_jax repository to clone
LOCAL_CHECKOUT = ''   # path of a dgan_jax checkout to use instead ('' = one at or above this folder, else clone)
INSTALL = True        # pip install dgan_jax with the runtime's extra (False: it is installed already)'''

SETUP = '''\
# Setup: find or clone the checkout, detect the runtime, install with the matching extra.
import os, pathlib, subprocess, sys

def find_checkout():
  """LOCAL_CHECKOUT, else a dgan_jax checkout at or above this folder, else a clone of REPO_URL."""
  here = pathlib.Path.cwd()
  for folder in [pathlib.Path(LOCAL_CHECKOUT)] if LOCAL_CHECKOUT else [here, *here.parents, here / 'dgan_jax']:
    if (folder / 'dgan_jax' / 'colab.py').is_file():
      return folder.resolve()
  if LOCAL_CHECKOUT:
    raise FileNotFoundError(f'LOCAL_CHECKOUT={LOCAL_CHECKOUT!r} is not a dgan_jax checkout.')
  if 'YOUR_ACCOUNT' in REPO_URL:
    raise ValueError('Set REPO_URL (first cell) to the dgan_jax repository, or LOCAL_CHECKOUT to a checkout.')
  subprocess.run(['git', 'clone', '--depth=1', REPO_URL, 'dgan_jax'], check=True)
  return (here / 'dgan_jax').resolve()

CHECKOUT = find_checkout()
sys.path.insert(0, str(CHECKOUT))
from dgan_jax import colab
RUNTIME = colab.detect_runtime()
print(f'checkout {CHECKOUT}, runtime {RUNTIME}')
if INSTALL:
  colab.install(CHECKOUT, RUNTIME)   # pip install -e "CHECKOUT[cuda12|tpu]": keeps an accelerator jax'''

CHECK = '''\
# jax must see the accelerator: this fails loudly if a CPU-only jax replaced the runtime's.
colab.check_accelerator(RUNTIME)'''

SETUP_MD = ('**Setup.** The next cell uses the checkout this notebook sits in (or `LOCAL_CHECKOUT`), '
            'else clones `REPO_URL`; it detects the runtime (GPU, TPU or CPU) and installs dgan_jax '
            'with the matching extra (`cuda12`, `tpu`, none), so pip installs an accelerator jax and '
            'never a CPU one over Colab\'s, and it leaves Colab\'s own tensorflow in place. '
            'Commands run through `colab.run`, which streams their output and stops the notebook '
            'when one fails.')


def params(extra: str):
  cell = new_code_cell('# Parameters (tests/test_notebooks.py replaces this cell with smoke values).\n'
                       + COMMON_PARAMS + '\n' + extra)
  cell.metadata['tags'] = ['parameters']
  return cell


def notebook(cells, accelerator='GPU'):
  nb = new_notebook(cells=cells)
  nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
  nb.metadata['language_info'] = {'name': 'python'}
  if accelerator:
    nb.metadata['accelerator'] = accelerator
  nb.metadata['colab'] = {'provenance': []}
  return nb


# --- toy25 -------------------------------------------------------------------------------------
toy = notebook([
    new_markdown_cell(
        '# dgan_jax: Diffusion-GAN on 25 Gaussians\n\n'
        'Trains Diffusion-GAN and the vanilla GAN baseline on the paper\'s 25-Gaussians example '
        '(section 4.2, figure 5) and shows the samples, the mode coverage and the adaptive diffusion '
        'trajectory. Runs on the free Colab CPU in a few minutes; a GPU or TPU runtime works too.'),
    params('''SMOKE = False         # True: 10 steps per run instead of 80,000 (a check that the notebook runs)
RUNS = 'runs'         # the two runs go into RUNS/toy25 and RUNS/toy25_vanilla'''),
    new_markdown_cell(SETUP_MD),
    new_code_cell(SETUP),
    new_code_cell(CHECK),
    new_markdown_cell(
        'Both runs use the same config and steps; the vanilla GAN turns the diffusion off. A rerun '
        'continues from the runs\' checkpoints.'),
    new_code_cell('''\
CONFIG = '--config=configs/toy25.py' + (':smoke --config.train.total_steps=10' if SMOKE else '')
colab.run(f'python -m dgan_jax.main {CONFIG} --workdir={RUNS}/toy25')
colab.run(f'python -m dgan_jax.main {CONFIG} --workdir={RUNS}/toy25_vanilla --config.diffusion.enabled=False')'''),
    new_code_cell('''\
import json
from IPython.display import Image, display
for run in [f'{RUNS}/toy25', f'{RUNS}/toy25_vanilla']:
  print(run, json.load(open(f'{run}/results.json')))
  display(Image(f'{run}/toy25.png'))
display(Image(f'{RUNS}/toy25/diffusion_trajectory.png'))'''),
    new_code_cell('''\
import numpy as np
from dgan_jax import toy
cov = toy.mode_coverage(np.load(f'{RUNS}/toy25/samples.npy'))
print(cov['modes_covered'], 'modes;', f"{100 * cov['high_quality_fraction']:.1f}% within 3 std of a centre")
assert 0 <= cov['modes_covered'] <= 25'''),
    new_code_cell('''\
# TensorBoard (losses, r_d, p, T) inline on Colab; elsewhere: tensorboard --logdir runs
if colab.in_colab():
  get_ipython().run_line_magic('load_ext', 'tensorboard')
  get_ipython().run_line_magic('tensorboard', f'--logdir {RUNS}')
else:
  print(f'Not on Colab: run `tensorboard --logdir {RUNS}` in a terminal.')'''),
], accelerator=None)

# --- train_cifar10 -------------------------------------------------------------------------------
cifar = notebook([
    new_markdown_cell(
        '# dgan_jax: train Diffusion-StyleGAN2 on CIFAR-10\n\n'
        'The paper\'s CIFAR-10 run (FID 3.19 after 50,000 kimg on 4 GPUs) with the live progress '
        'line and sample grids, TensorBoard, resuming after a disconnect, FID, image generation, and '
        'an export to PyTorch that is loaded and sampled in torch. Pick a GPU or TPU runtime '
        '(Runtime > Change runtime type). A full run takes days; `configs/cifar10.py:small` shows '
        'learning in minutes.\n\n'
        '**Resume after a disconnect.** Put `WORKDIR` on Google Drive (mounted below) or a `gs://` '
        'bucket: Colab\'s disk is lost with the VM. After a disconnect, run the notebook again from '
        'the top with the same parameters: the training cell runs the same command and continues '
        'from the last checkpoint in `WORKDIR` (checkpoints every `train.checkpoint_every_kimg`, and '
        'on SIGTERM), with the same data order and randomness as an uninterrupted run.'),
    params('''SMOKE = False         # True: tiny networks, a made-up dataset, 2 + 2 steps (a check that the notebook runs)
WORKDIR = '/content/drive/MyDrive/dgan_jax/cifar10'  # Drive, gs://bucket/path or a local folder
DATA = 'tfds'         # 'tfds' (tensorflow-datasets cifar10, built on first use) or a stylegan2-ada zip path
CONFIG = 'configs/cifar10.py'   # e.g. 'configs/cifar10.py:small' (1/16 width), ':diffusion_ada', ...
TOTAL_KIMG = 50000.0  # training length (the reference command's --kimg)
MORE_KIMG = 0.0       # > 0: the resume cell trains this much further (same command, longer run)
FID_METRIC = 'fid50k_full'  # '' skips FID (it needs the Inception weights: downloaded below when online)
SEEDS = '0-63'        # --mode=generate seeds
EXPORT = 'network.pt' # PyTorch export of G, D and G_ema'''),
    new_markdown_cell(SETUP_MD),
    new_code_cell(SETUP),
    new_code_cell(CHECK),
    new_code_cell('''\
# The workdir: Drive is mounted when WORKDIR is on it; gs:// needs the Colab user's credentials.
if WORKDIR.startswith('/content/drive') and colab.in_colab():
  from google.colab import drive
  drive.mount('/content/drive')
elif WORKDIR.startswith('gs://') and colab.in_colab():
  from google.colab import auth
  auth.authenticate_user()
elif WORKDIR.startswith('/content/drive'):
  raise ValueError(f'WORKDIR={WORKDIR!r} is on Google Drive, which exists only on Colab: set a local folder.')
if not WORKDIR.startswith('gs://'):
  os.makedirs(WORKDIR, exist_ok=True)
print('workdir:', WORKDIR)'''),
    new_markdown_cell(
        '**Data.** `tfds`: tensorflow-datasets\' `cifar10`, downloaded and prepared once (the same as '
        '`tfds build cifar10`; training never downloads). Or upload a stylegan2-ada zip (the Files '
        'pane, or Drive) and set `DATA` to its path; `python -m dgan_jax.dataset_tool '
        '--source=cifar-10-python.tar.gz --dest=cifar10.zip` makes one. The smoke run writes a tiny '
        'zip with the same tool.'),
    new_code_cell('''\
if SMOKE:   # 16 made-up 32x32 images -> a stylegan2-ada zip, through dgan_jax's dataset tool
  import numpy as np
  from PIL import Image
  os.makedirs('smoke_images', exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(16):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f'smoke_images/{i:02d}.png')
  colab.run('python -m dgan_jax.dataset_tool --source=smoke_images --dest=smoke.zip')
  DATA_FLAGS = '--config.data.path=smoke.zip'
elif DATA == 'tfds':
  import tensorflow_datasets as tfds
  tfds.builder('cifar10').download_and_prepare()
  DATA_FLAGS = '--config.data.source=tfds --config.data.name=cifar10'
else:
  DATA_FLAGS = f'--config.data.path={DATA}'
print(DATA_FLAGS)'''),
    new_code_cell('''\
# TensorBoard inline (losses, r_d, p, T, images/s, sample grids); it refreshes while training runs.
if colab.in_colab():
  get_ipython().run_line_magic('load_ext', 'tensorboard')
  get_ipython().run_line_magic('tensorboard', f'--logdir {WORKDIR}')
else:
  print(f'Not on Colab: run `tensorboard --logdir {WORKDIR}` in a terminal.')'''),
    new_markdown_cell(
        '**Train.** One progress line per `train.log_every_steps` (T, p, r_d, losses, speed, ETA '
        'from steady-state steps); each new sample grid (`fakesKKKKKK.png`, G_ema on fixed latents) '
        'is shown as it is written. `--config.train.verbose_logs=True` adds every scalar to the log.'),
    new_code_cell('''\
def train_command(kimg):
  if SMOKE:   # tiny networks; steps instead of kimg; a grid every step; no R1 (one compiled step)
    length = (f'--config.train.total_steps={int(kimg)} --config.loss.r1_interval=0 '
              '--config.train.sample_every_kimg=0.016')
    smoke = CONFIG + (',smoke' if ':' in CONFIG else ':smoke')
    return f'python -m dgan_jax.main --config={smoke} --workdir={WORKDIR} {DATA_FLAGS} {length}'
  return (f'python -m dgan_jax.main --config={CONFIG} --workdir={WORKDIR} {DATA_FLAGS} '
          f'--config.train.total_kimg={kimg}')

from IPython.display import Image, display
if not SMOKE and pathlib.Path(WORKDIR, 'reals.png').exists():
  display(Image(f'{WORKDIR}/reals.png'))
colab.run(train_command(TOTAL_KIMG), watch=WORKDIR)'''),
    new_markdown_cell(
        '**Resume.** The same command continues from the last checkpoint (it printed `Resumed from '
        '... at step N` if there was one). To train longer, set `MORE_KIMG`: the cell reruns the '
        'command with a longer `train.total_kimg`.'),
    new_code_cell('''\
if MORE_KIMG > 0:
  TOTAL_KIMG += MORE_KIMG
  colab.run(train_command(TOTAL_KIMG), watch=WORKDIR)
else:
  print('MORE_KIMG = 0: nothing more to train.')'''),
    new_markdown_cell(
        '**FID** of the latest checkpoint (`--mode=eval`; `--step=N` picks another). The Inception '
        'weights are downloaded into `~/.cache/dgan_jax/metrics` when there is internet (reading '
        'the `.pth` once needs torch, which Colab has); otherwise the cell says so and skips.'),
    new_code_cell('''\
if FID_METRIC and colab.fetch_inception_weights():
  colab.run(f'python -m dgan_jax.main --mode=eval --workdir={WORKDIR} {DATA_FLAGS} '
            f'--config.eval.metrics={FID_METRIC}')   # prints the value; metrics.jsonl keeps it
else:
  print('FID skipped (FID_METRIC is empty, or the Inception weights could not be downloaded).')'''),
    new_markdown_cell('**Generate** images by seed (the reference\'s seed rule), their grid and an '
                      'interpolation between consecutive seeds.'),
    new_code_cell('''\
colab.run(f'python -m dgan_jax.main --mode=generate --workdir={WORKDIR} --seeds={SEEDS} --outdir=generated')
display(Image('generated/grid.png'))
display(Image('generated/interpolation.png'))'''),
    new_markdown_cell(
        '**Export to PyTorch**: G, D and G_ema as the reference\'s state dicts, then the generator '
        'loaded with `dgan_jax.interop.torch_generator` (plain torch, no reference code) and sampled.'),
    new_code_cell('''\
try:
  import torch
except ImportError:
  torch = None
  print('torch is not installed: export skipped (pip install "dgan_jax[torch]").')
if torch is not None:
  colab.run(f'python -m dgan_jax.export --workdir={WORKDIR} --format=torch --out={EXPORT}')
  from dgan_jax import grids
  from dgan_jax.interop import torch_generator
  g = torch_generator.load_exported_generator(EXPORT)
  images = g(torch.randn(16, g.z_dim, generator=torch.Generator().manual_seed(0)))
  print('torch generator output', tuple(images.shape))
  grid = grids.tile(grids.to_uint8(images.numpy().transpose(0, 2, 3, 1)), 4)
  grids.save_png(pathlib.Path('torch_samples.png'), grid)
  display(Image('torch_samples.png'))'''),
])

# --- pretrained ----------------------------------------------------------------------------------
pre = notebook([
    new_markdown_cell(
        '# dgan_jax: the authors\' released Diffusion-StyleGAN2 checkpoints\n\n'
        'Downloads a checkpoint from the authors\' README (their Hugging Face page), imports it with '
        '`dgan_jax.import_torch` (read as data: no pickled code runs, torch is not needed), then '
        'generates images, interpolates between seeds and computes its FID. The import is a normal '
        'dgan_jax run directory: `--mode=eval`, `--mode=generate` and training all work on it.'),
    params('''SMOKE = False         # True: a small reference-format pickle from the checkout instead of a download
CHECKPOINT = 'diffusion-stylegan2-cifar10'   # a name from the table in the next cell
RUN = 'runs/pretrained'                      # the imported run directory
SEEDS = '0-63'
TRUNC = 1.0                  # truncation psi of the generated images (< 1: closer to the average)
FID_METRIC = 'fid50k_full'   # '' skips FID (needs the Inception weights, downloaded when online)
FID_DATA = 'tfds:cifar10'    # real images of the FID: 'tfds:<name>' or a stylegan2-ada zip path'''),
    new_markdown_cell(SETUP_MD),
    new_code_cell(SETUP),
    new_code_cell(CHECK),
    new_markdown_cell(
        'The authors\' Diffusion-StyleGAN2 checkpoints (their README, *Sampling and Evaluation with '
        'our checkpoints*; FID as reported there). The Diffusion-ProjectedGAN and Diffusion-InsGen '
        'checkpoints of that table are other model families.'),
    new_code_cell('''\
HF = 'https://huggingface.co/zhendongw/diffusion-gan/resolve/main/checkpoints/'
CHECKPOINTS = {   # name: (resolution, the authors' FID)
    'diffusion-stylegan2-cifar10': (32, 3.19),
    'diffusion-stylegan2-celeba64': (64, 1.69),
    'diffusion-stylegan2-stl10': (64, 11.53),
    'diffusion-stylegan2-lsun-bedroom': (256, 3.65),
    'diffusion-stylegan2-lsun-church': (256, 3.17),
    'diffusion-stylegan2-ffhq': (1024, 2.83),
}
if SMOKE:   # the reference-format snapshot the tests import (tests/fixtures, made with the authors' classes)
  import gzip
  PKL = pathlib.Path('reference_snapshot.pkl')
  PKL.write_bytes(gzip.decompress((CHECKOUT / 'tests/fixtures/reference_snapshot_no.pkl.gz').read_bytes()))
else:
  import urllib.request
  PKL = pathlib.Path(f'{CHECKPOINT}.pkl')
  if not PKL.exists():
    print('downloading', HF + PKL.name, f'({CHECKPOINTS[CHECKPOINT]})')
    urllib.request.urlretrieve(HF + PKL.name, PKL)
print(PKL, f'{PKL.stat().st_size / 2**20:.1f} MiB')'''),
    new_markdown_cell('**Import** into a dgan_jax run directory, here through the library; the '
                      'command line does the same: `python -m dgan_jax.import_torch --pkl=X.pkl '
                      '--out=runs/x`.'),
    new_code_cell('''\
from dgan_jax import import_torch
if pathlib.Path(RUN, 'checkpoints').exists():
  print(f'{RUN} holds an import already: using it.')
else:
  import_torch.import_pickle(PKL, RUN)
import json
config = json.load(open(f'{RUN}/config.json'))
print('imported: resolution', config['data']['resolution'], '| diffusion', config['diffusion'])'''),
    new_markdown_cell('**Generate and interpolate**: images by seed with the reference\'s seed rule '
                      '(`z = RandomState(seed).randn(z_dim)`), const noise, truncation `TRUNC`; '
                      'their grid; and an interpolation in z between consecutive seeds (rows: '
                      'seed pairs, `interpolation.png` and `.gif`).'),
    new_code_cell('''\
from IPython.display import Image, display
colab.run(f'python -m dgan_jax.main --mode=generate --workdir={RUN} --seeds={SEEDS} --trunc={TRUNC} '
          f'--outdir={RUN}/generate')
display(Image(f'{RUN}/generate/grid.png'))
display(Image(f'{RUN}/generate/interpolation.png'))'''),
    new_markdown_cell('**FID** of the imported generator against the real images (50k generated; '
                      'skipped without the Inception weights).'),
    new_code_cell('''\
source, _, name = FID_DATA.partition(':')
data_flags = (f'--config.data.source=tfds --config.data.name={name}' if source == 'tfds'
              else f'--config.data.source=zip --config.data.path={FID_DATA}')
if FID_METRIC and colab.fetch_inception_weights():
  if source == 'tfds':
    import tensorflow_datasets as tfds
    tfds.builder(name).download_and_prepare()
  colab.run(f'python -m dgan_jax.main --mode=eval --workdir={RUN} {data_flags} --config.eval.metrics={FID_METRIC}')
else:
  print('FID skipped (FID_METRIC is empty, or the Inception weights could not be downloaded).')'''),
])

for name, nb in (('toy25', toy), ('train_cifar10', cifar), ('pretrained', pre)):
  for i, cell in enumerate(nb.cells):
    cell.id = f'cell-{i:02d}'   # stable ids: rewriting an unchanged notebook changes nothing
  nbformat.validate(nb)
  nbformat.write(nb, OUT / f'{name}.ipynb')
  print('wrote', OUT / f'{name}.ipynb')
