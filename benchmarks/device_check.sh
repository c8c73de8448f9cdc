#!/usr/bin/env bash
# The accelerator check: what one GPU (or TPU) machine does with dgan_jax, in one JSON: devices,
# both families side by side with the authors' PyTorch code on the same GPU, the cifar training step
# at batch 32 and 64 in mixed precision and float32, G and D forward speed, Inception feature
# extraction speed, and a 2-minute CIFAR-10 run from the stylegan2-ada zip (T, r_d, images/s).
# Details: benchmarks/device_check.py. On one H200 the first five sections took 179, 145, 158 and
# 67 s, and cifar_run was cut off after about 100 s, still compiling: the whole check is 15-20
# minutes, so a short lease runs it in parts with --sections.
#
#   bash benchmarks/device_check.sh [--data=ZIP] [--out=FILE] [--quick] [--sections=A,B]
#
# --data  the CIFAR-10 zip (default ../shared/data/cifar10/train.zip, else shared/data/...): copied
#         once to .device_data/cifar10/train.zip (git-ignored) so the run reads a local copy.
# --out   the JSON (default .device_data/device_check.json).
# --quick tiny sizes, to check the script on a CPU in a few minutes.
# --sections  a comma-separated subset, in that order (names: benchmarks/device_check.py).
# The side-by-side sections need the authors' code: a tar of it (`git archive HEAD` of the mirror) is
# made once at .device_data/reference.tar from $DGAN_REFERENCE_REPO or the mirror beside the
# checkout, so a machine without git or the mirror can run them.
# JAX does not preallocate GPU memory here (XLA_PYTHON_CLIENT_PREALLOCATE=false): the reference's
# PyTorch shares the process and the training run is a second process.
# The whole check stops after DEVICE_CHECK_LIMIT_S seconds (default 1500; --quick 1200); the JSON
# then holds the sections that finished.
set -euo pipefail
cd "$(dirname "$0")/.."

data='' out=.device_data/device_check.json quick=() sections=()
for arg in "$@"; do
  case $arg in
    --data=*) data=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --quick) quick=(--quick) ;;
    --sections=*) sections=("$arg") ;;
    *) echo "device_check.sh: unknown argument $arg (--data=ZIP --out=FILE --quick --sections=A,B)" >&2
       exit 2 ;;
  esac
done
python=$(command -v python3 || command -v python)
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
reference_tar=.device_data/reference.tar
if [ ! -f "$reference_tar" ]; then
  mirror=${DGAN_REFERENCE_REPO:-../.mirror/Zhendong-Wang+Diffusion-GAN/repo}
  if [ -d "$mirror" ] && command -v git >/dev/null; then
    git -C "$mirror" archive HEAD -o "$PWD/$reference_tar"
  else
    echo "device_check.sh: no reference mirror at $mirror: the vs_reference sections will fail." >&2
  fi
fi
if [ -f "$reference_tar" ]; then export DGAN_REFERENCE_REPO=$PWD/$reference_tar; fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
run_seconds=120 limit=${DEVICE_CHECK_LIMIT_S:-1500}
if [ ${#quick[@]} -gt 0 ]; then run_seconds=330 limit=${DEVICE_CHECK_LIMIT_S:-1200}; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
timeout -s TERM "$limit" "$python" benchmarks/device_check.py --out="$out" \
  --data="$local_zip" --run-seconds="$run_seconds" "${quick[@]}" "${sections[@]}" || status=$?
echo "device_check.sh: exit ${status:-0}; results in $out"
exit "${status:-0}"
