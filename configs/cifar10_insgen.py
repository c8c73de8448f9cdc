"""CIFAR-10 with few images: Diffusion-InsGen vs InsGen vs Diffusion-StyleGAN2 (issue 12's CPU study).

The paper's limited-data study (Table 3) is FFHQ and AFHQ on GPUs; this is its CPU-sized
counterpart on the shared CIFAR-10 zip: a seeded 1,000-image subset (`:n1k`), the 1/16-width
StyleGAN2 of `configs/cifar10.py:small`, the InsGen defaults of configs/insgen.py (T_max 500,
uniform t, ADA before the diffusion, target 0.6, queues 5% of the data x2 with x-flips):
  python -m dgan_jax.main --config=configs/cifar10_insgen.py:n1k,small --workdir=runs/c10_dinsgen \\
      --config.data.path=../shared/data/cifar10/train.zip
Variants: a method `:insgen` (no diffusion) or `:diffusion` (Diffusion-StyleGAN2 + ADA, the
reference's --no_insgen), default Diffusion-InsGen; a subset `:n1k` or `:n5k` (all images without
one); a size `:small` (CPU) or `:smoke` (tests); full width without a size (the `cifar` preset).
The three methods side by side: `bash launch/insgen_cifar10_1k.sh` (results in the README).
"""
from configs import cifar10, insgen

SUBSETS = {'n1k': 1000, 'n5k': 5000}


def get_config(arg=None):
  config = insgen.get_config('cifar', 32)
  config.data.source = 'auto'         # The zip at data.path if given, else tfds cifar10.
  config.data.name = 'cifar10'
  config.data.xflip = True
  parts = insgen.apply_variants(config, [p for p in (arg or '').split(',') if p])
  subsets = [p for p in parts if p in SUBSETS]
  unknown = [p for p in parts if p not in SUBSETS and p != 'small']
  if unknown or len(subsets) > 1:
    raise ValueError(f'Unknown or conflicting variant {arg!r}: use at most one subset of '
                     f'{list(SUBSETS)}, one method of {list(insgen.METHODS)}, small or smoke, '
                     'comma-separated.')
  if 'small' in parts:
    cifar10.apply_small(config)
  if subsets:
    config.data.max_images = SUBSETS[subsets[0]]
  return config
