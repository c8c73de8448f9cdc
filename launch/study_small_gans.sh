#!/usr/bin/env bash
# Issue 13, study 1: DCGAN vs Diffusion-DCGAN and SNGAN vs Diffusion-SNGAN on full CIFAR-10, at the
# CPU width (`:small`, 1/4 channels), same steps and seeds per pair; then prints the table
# (fd10k-clf, kid10k-clf; launch/study_table.py) and draws each pair's last G_ema grids for the first
# seed ($runs/grids_<family>_seed<S>.png, launch/grid_strip.py; each Diffusion- run also writes its
# T trajectory, diffusion_trajectory.png). Trains the offline classifier first if absent.
#
#   bash launch/study_small_gans.sh [runs_dir] [seeds] [--config.x=y ...]
#   env: DATA (train zip), CLF (classifier file), STEPS_DCGAN, STEPS_SNGAN (D steps per run),
#        FAMILIES (a subset of "dcgan sngan"), VARIANTS (a subset of "small diffusion,small"),
#        TAG (appended to each run folder's variant name, for runs with extra --config flags)
#
# Extra --config flags go to every run, e.g. the README's Diffusion-DCGAN with target 0.9:
#   FAMILIES=dcgan STEPS_DCGAN=1000 VARIANTS=diffusion,small TAG=_target09 \
#     bash launch/study_small_gans.sh runs/study_small_gans "0 1" --config.diffusion.target=0.9
#
# Defaults: 2 seeds, 2,000 DCGAN steps and 1,500 SNGAN steps (300 G updates), batch 64. Measured
# on the shared 2-core CPU (benchmarks/study_step_time.py; docs/families.md): DCGAN 0.75 s/step,
# Diffusion-DCGAN 0.91, SNGAN 1.22, Diffusion-SNGAN 1.20, so 25 / 30 / 31 / 30 minutes of steps per
# run plus 2-3 minutes of start-up, compilation and the final fd10k-clf / kid10k-clf (measured with
# 2-step runs); about 4.5 hours for the 8 runs (the first one also trains the classifier).
set -euo pipefail
runs=${1:-runs/study_small_gans}
seeds=${2:-"0 1"}
shift $(($# < 2 ? $# : 2))
data=${DATA:-../shared/data/cifar10/train.zip}
clf=${CLF:-$runs/cifar10_clf.npz}
declare -A steps=([dcgan]=${STEPS_DCGAN:-2000} [sngan]=${STEPS_SNGAN:-1500})
mkdir -p "$runs"
if [ ! -f "$clf" ]; then
  python -m dgan_jax.metrics.train_classifier --data="$data" --out="$clf"
fi
first_seed=${seeds%% *}
table=()
for family in ${FAMILIES:-dcgan sngan}; do
  panels=()
  for variant in ${VARIANTS:-small diffusion,small}; do
    label=$([ "$variant" = small ] && echo "${family^^}" || echo "Diffusion-${family^^}")${TAG:-}
    dirs=""
    for seed in $seeds; do
      workdir="$runs/${family}_${variant%%,*}${TAG:-}_seed$seed"
      start=$SECONDS
      python -m dgan_jax.main --config="configs/cifar10_$family.py:$variant" --workdir="$workdir" \
        --config.data.path="$data" --config.seed="$seed" \
        --config.train.total_steps="${steps[$family]}" \
        --config.eval.metrics=fd10k-clf,kid10k-clf --config.eval.clf_path="$clf" "$@"
      echo "$workdir: $((SECONDS - start)) s" | tee -a "$runs/times.txt"
      dirs="$dirs,$workdir"
      if [ "$seed" = "$first_seed" ]; then panels+=("$label=$workdir"); reals="$workdir/reals.png"; fi
    done
    table+=("$label=${dirs#,}")
  done
  python launch/grid_strip.py "$runs/grids_${family}${TAG:-}_seed$first_seed.png" "$reals" "${panels[@]}"
done
python launch/study_table.py "${table[@]}" | tee "$runs/table.md"
