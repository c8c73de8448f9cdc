"""AFHQ 512x512 (Cat, Dog or Wild, one zip each made with dgan_jax.dataset_tool): Diffusion-InsGen.

  python -m dgan_jax.main --config=configs/afhq512_insgen.py --workdir=runs/afhq_wild \
      --config.data.path=datasets/afhq-wild.zip
Expected (reference README, released checkpoints): FID 2.40 (Cat), 4.83 (Dog), 1.51 (Wild).
Reference: `diffusion-insgen/train.py --gpus=8 --cfg paper512 --kimg 25000` (T_max 500, uniform t,
--daug ADA, queues of 5% of the dataset x2 with x-flips).
Variants: `:insgen` (no diffusion), `:diffusion` (--no_insgen), `:smoke` (tiny, tests).
"""
from configs import insgen


def get_config(arg=None):
  config = insgen.get_config('paper512', 512)
  unknown = insgen.apply_variants(config, [p for p in (arg or '').split(',') if p])
  if unknown:
    raise ValueError(f'Unknown variant(s) {unknown}: use {list(insgen.METHODS)} and/or smoke.')
  return config
