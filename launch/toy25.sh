#!/usr/bin/env bash
# Reproduces the README's 25-Gaussians table: Diffusion-GAN and the vanilla GAN baseline, same seed
# and steps, then prints both mode-coverage results.
#   bash launch/toy25.sh [runs_dir]
set -euo pipefail
runs=${1:-runs}
python -m dgan_jax.main --config=configs/toy25.py --workdir="$runs/toy25"
python -m dgan_jax.main --config=configs/toy25.py --workdir="$runs/toy25_vanilla" \
  --config.diffusion.enabled=False
for r in toy25 toy25_vanilla; do echo "$r: $(cat "$runs/$r/results.json" | tr -d '\n ')"; done
