#!/usr/bin/env bash
# The accelerator check: what one GPU (or TPU) machine does with dgan_jax, in one JSON, in under
# 8 minutes: devices, the cifar training step at batch 32 and 64 in mixed precision and float32,
# G and D forward speed, Inception feature extraction speed, and a 2-minute CIFAR-10 run from the
# stylegan2-ada zip (T, r_d, images/s). Details: benchmarks/device_check.py.
#
#   bash benchmarks/device_check.sh [--data=ZIP] [--out=FILE] [--quick]
#
# --data  the CIFAR-10 zip (default ../shared/data/cifar10/train.zip, else shared/data/...): copied
#         once to .device_data/cifar10/train.zip (git-ignored) so the run reads a local copy.
# --out   the JSON (default .device_data/device_check.json).
# --quick tiny sizes, to check the script on a CPU in a few minutes.
# The whole check stops after DEVICE_CHECK_LIMIT_S seconds (default 470; --quick 1200); the JSON
# then holds the sections that finished.
set -euo pipefail
cd "$(dirname "$0")/.."

data='' out=.device_data/device_check.json quick=()
for arg in "$@"; do
  case $arg in
    --data=*) data=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --quick) quick=(--quick) ;;
    *) echo "device_check.sh: unknown argument $arg (--data=ZIP --out=FILE --quick)" >&2; exit 2 ;;
  esac
done
if [ -z "$data" ]; then
  for candidate in ../shared/data/cifar10/train.zip shared/data/cifar10/train.zip; do
    if [ -f "$candidate" ]; then data=$candidate; break; fi
  done
fi
local_zip=.device_data/cifar10/train.zip
mkdir -p .device_data/cifar10
if [ ! -f "$local_zip" ]; then
  if [ -n "$data" ] && [ -f "$data" ]; then
    cp "$data" "$local_zip"
  else
    echo "device_check.sh: no CIFAR-10 zip (pass --data=PATH); the cifar_run section will fail." >&2
  fi
fi
run_seconds=120 limit=${DEVICE_CHECK_LIMIT_S:-470}
if [ ${#quick[@]} -gt 0 ]; then run_seconds=330 limit=${DEVICE_CHECK_LIMIT_S:-1200}; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
timeout -s TERM "$limit" python benchmarks/device_check.py --out="$out" \
  --data="$local_zip" --run-seconds="$run_seconds" "${quick[@]}" || status=$?
echo "device_check.sh: exit ${status:-0}; results in $out"
exit "${status:-0}"
