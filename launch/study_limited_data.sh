#!/usr/bin/env bash
# Issue 13, study 2: limited data. CIFAR-10 with 5,000 training images (data.max_images, a seeded
# subset; the metrics' real side is the full training set), the reduced-width StyleGAN2 preset
# (configs/cifar10.py `:small`): StyleGAN2, Diffusion-StyleGAN2, StyleGAN2 + ADA, StyleGAN2 +
# DiffAugment; same steps and seeds. Prints fd10k-clf, kid10k-clf and D's real/fake score gap
# early and late (D overfitting; launch/study_table.py), then draws the first seed's last G_ema grids
# ($runs/grids_seed<S>.png, launch/grid_strip.py) and D's score gap over training
# ($runs/score_gap_seed<S>.png, launch/score_gap_plot.py). Trains the offline classifier if absent.
#
#   bash launch/study_limited_data.sh [runs_dir] [seeds]
#   env: DATA (train zip), CLF (classifier file), STEPS (steps per run), MAX_IMAGES (5000),
#        ROWS (a subset of "stylegan2 diffusion stylegan2_ada stylegan2_diffaug")
#
# Defaults: 2 seeds, 2,000 steps of batch 32 (64 kimg, 13 passes over the 5,000 images). Measured
# on the shared 2-core CPU (benchmarks/study_step_time.py; docs/families.md): StyleGAN2 0.52
# s/step, Diffusion-StyleGAN2 0.79, + ADA 0.90, + DiffAugment 0.61, so 17 / 26 / 30 / 20 minutes of
# steps per run plus 2-3 minutes of compilation and the final metrics; about 3.8 hours for 8 runs.
set -euo pipefail
runs=${1:-runs/study_limited_data}
seeds=${2:-"0 1"}
data=${DATA:-../shared/data/cifar10/train.zip}
clf=${CLF:-$runs/cifar10_clf.npz}
steps=${STEPS:-2000}
max_images=${MAX_IMAGES:-5000}
mkdir -p "$runs"
if [ ! -f "$clf" ]; then
  python -m dgan_jax.metrics.train_classifier --data="$data" --out="$clf"
fi
declare -A labels=([stylegan2]="StyleGAN2" [diffusion]="Diffusion-StyleGAN2"
                   [stylegan2_ada]="StyleGAN2 + ADA" [stylegan2_diffaug]="StyleGAN2 + DiffAugment")
first_seed=${seeds%% *}
table=()
first_runs=()
for row in ${ROWS:-stylegan2 diffusion stylegan2_ada stylegan2_diffaug}; do
  dirs=""
  for seed in $seeds; do
    workdir="$runs/${row}_n${max_images}_seed$seed"
    start=$SECONDS
    python -m dgan_jax.main --config="configs/cifar10.py:$row,small" --workdir="$workdir" \
      --config.data.path="$data" --config.data.max_images="$max_images" --config.seed="$seed" \
      --config.train.total_steps="$steps" --config.train.log_every_steps=25 \
      --config.eval.metrics=fd10k-clf,kid10k-clf --config.eval.every_kimg=0 \
      --config.eval.clf_path="$clf"
    echo "$workdir: $((SECONDS - start)) s" | tee -a "$runs/times.txt"
    dirs="$dirs,$workdir"
    if [ "$seed" = "$first_seed" ]; then first_runs+=("${labels[$row]}=$workdir"); reals="$workdir/reals.png"; fi
  done
  table+=("${labels[$row]}=${dirs#,}")
done
python launch/study_table.py "${table[@]}" | tee "$runs/table.md"
python launch/grid_strip.py "$runs/grids_seed$first_seed.png" "$reals" "${first_runs[@]}"
python launch/score_gap_plot.py "$runs/score_gap_seed$first_seed.png" "${first_runs[@]}"
