#!/usr/bin/env bash
# Issue 12's CPU study: Diffusion-InsGen, InsGen and Diffusion-StyleGAN2 (+ ADA, the reference's
# --no_insgen) on a seeded 1,000-image subset of CIFAR-10 at the 1/16 width
# (configs/cifar10_insgen.py `:n1k,small`), same seed and steps. Writes each run's sample grids,
# a table (fd10k-clf / kid10k-clf against the full training set, final T, D's real/fake score
# gap early and late: launch/study_table.py) and a plot of the gap over time
# (launch/score_gap_plot.py). Trains the offline classifier first if absent.
#
#   bash launch/insgen_cifar10_1k.sh [runs_dir] [seed]
#   env: DATA (train zip), CLF (classifier file), STEPS (steps per run), ROWS (a subset of
#        "diffusion_insgen insgen diffusion")
#
# README figures: STEPS=600 (19.2 kimg, 19 passes over the 1,000 images), seed 0.
set -euo pipefail
runs=${1:-runs/insgen_cifar10_1k}
seed=${2:-0}
data=${DATA:-../shared/data/cifar10/train.zip}
clf=${CLF:-$runs/cifar10_clf.npz}
steps=${STEPS:-600}
mkdir -p "$runs"
if [ ! -f "$clf" ]; then
  python -m dgan_jax.metrics.train_classifier --data="$data" --out="$clf"
fi
declare -A labels=([diffusion_insgen]="Diffusion-InsGen" [insgen]="InsGen"
                   [diffusion]="Diffusion-StyleGAN2 + ADA")
table=()
gaps=()
for row in ${ROWS:-diffusion_insgen insgen diffusion}; do
  workdir="$runs/${row}_n1k_seed$seed"
  start=$SECONDS
  python -m dgan_jax.main --config="configs/cifar10_insgen.py:$row,n1k,small" --workdir="$workdir" \
    --config.data.path="$data" --config.seed="$seed" --config.train.total_steps="$steps" \
    --config.train.log_every_steps=10 --config.train.sample_every_kimg=6.4 \
    --config.eval.metrics=fd10k-clf,kid10k-clf --config.eval.every_kimg=0 \
    --config.eval.clf_path="$clf"
  echo "$workdir: $((SECONDS - start)) s" | tee -a "$runs/times.txt"
  table+=("${labels[$row]}=$workdir")
  gaps+=("${labels[$row]}=$workdir")
done
python launch/study_table.py "${table[@]}" | tee "$runs/table.md"
python launch/score_gap_plot.py "$runs/score_gap.png" "${gaps[@]}"
