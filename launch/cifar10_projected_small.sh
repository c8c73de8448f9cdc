#!/usr/bin/env bash
# The README's Diffusion-ProjectedGAN CPU run: configs/cifar10_projected.py:small (FastGAN ngf 16,
# batch 16, RANDOM backbone weights: not the paper's method) on the shared CIFAR-10 zip, then its
# T trajectory. Prints the controller's progress rows and writes the README's figure
# (reals, then every G_ema grid: $runs/cifar10_pg_small/strip.png; launch/grid_strip.py).
#   bash launch/cifar10_projected_small.sh [runs_dir] [kimg]
set -euo pipefail
runs=${1:-runs}
kimg=${2:-2}
data=${DATA:-../shared/data/cifar10/train.zip}
run="$runs/cifar10_pg_small"
python -m dgan_jax.main --config=configs/cifar10_projected.py:small \
  --workdir="$run" --config.data.path="$data" --config.train.total_kimg="$kimg"
python - "$run" <<'PY'
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
rows = json.loads((run / 'diffusion_history.json').read_text())
for row in rows[:: max(len(rows) // 10, 1)] + rows[-1:]:
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
PY
panels=("$run/reals.png")
for grid in "$run"/fakes*.png; do
  kimg_done=${grid##*fakes}
  panels+=("$((10#${kimg_done%.png})) kimg=$grid")
done
python launch/grid_strip.py --rows=6 "$run/strip.png" "${panels[@]}"
