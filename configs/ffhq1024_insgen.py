"""FFHQ 1024x1024 with few images: Diffusion-InsGen (the paper's limited-data study, Table 3).

Subsets of the dataset zip (made with dgan_jax.dataset_tool) are seeded random draws of
`data.max_images` images, as the reference's `--subset`:
  python -m dgan_jax.main --config=configs/ffhq1024_insgen.py:n2k --workdir=runs/ffhq_n2k \
      --config.data.path=datasets/ffhq1024.zip
Variants: a subset `:n200`, `:n500`, `:n1k`, `:n2k`, `:n5k` (all images without one); a method
`:insgen` (no diffusion) or `:diffusion` (Diffusion-StyleGAN2 + ADA, the reference's --no_insgen),
default Diffusion-InsGen; `:smoke` (tiny, tests). Comma-separated, e.g. `:n1k,insgen`.
Expected: the paper's Table 3 gives FID for each subset (not restated here: we have not run them).
Reference: `diffusion-insgen/train.py --cfg stylegan2 --subset N` (T_max 500, uniform t, --daug ADA).
"""
from configs import insgen

SUBSETS = {'n200': 200, 'n500': 500, 'n1k': 1000, 'n2k': 2000, 'n5k': 5000}


def get_config(arg=None):
  config = insgen.get_config('stylegan2', 1024)
  parts = insgen.apply_variants(config, [p for p in (arg or '').split(',') if p])
  subsets = [p for p in parts if p in SUBSETS]
  unknown = [p for p in parts if p not in SUBSETS]
  if unknown or len(subsets) > 1:
    raise ValueError(f'Unknown or conflicting variant {arg!r}: use at most one subset of '
                     f'{list(SUBSETS)}, one method of {list(insgen.METHODS)} and/or smoke, '
                     'comma-separated.')
  if subsets:
    config.data.max_images = SUBSETS[subsets[0]]
  return config
