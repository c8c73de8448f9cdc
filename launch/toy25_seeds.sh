#!/usr/bin/env bash
# Mode coverage of the 25-Gaussians toy over several seeds (two runs at a time), then a table.
#   bash launch/toy25_seeds.sh RUNS_DIR "SEEDS" [--config.x=y ...]
# e.g.  bash launch/toy25_seeds.sh runs/seeds "0 1 2 3 4"
#       bash launch/toy25_seeds.sh runs/seeds_vanilla "0 1 2 3 4" --config.diffusion.enabled=False
set -euo pipefail
runs=${1:?runs dir}; seeds=${2:-"0 1 2 3 4"}; shift $(( $# < 2 ? $# : 2 ))   # the rest: overrides
mkdir -p "$runs"
run() {
  python -m dgan_jax.main --config=configs/toy25.py --workdir="$runs/seed$1" --config.seed="$1" \
    "${@:2}" > "$runs/seed$1.log" 2>&1
}
running=0
for s in $seeds; do
  run "$s" "$@" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
# shellcheck disable=SC2086  # $seeds is a list of words on purpose.
python - "$runs" $seeds <<'PY'
import json, sys
runs, seeds = sys.argv[1], sys.argv[2:]
rows = [json.load(open(f'{runs}/seed{s}/results.json')) for s in seeds]
for s, r in zip(seeds, rows):
  print(f'seed {s}: {r["modes_covered"]:2d}/25 modes, {100 * r["high_quality_fraction"]:.1f}% '
        f'high quality, final T {r["final_T"]}')
full = sum(r['modes_covered'] == 25 for r in rows)
print(f'all 25 modes in {full}/{len(rows)} seeds; mean {sum(r["modes_covered"] for r in rows) / len(rows):.1f} modes')
PY
