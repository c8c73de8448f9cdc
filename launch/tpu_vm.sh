#!/usr/bin/env bash
# Trains dgan_jax on a Cloud TPU VM or pod slice: creates it, installs dgan_jax on every worker,
# starts the same command on all workers (one JAX process per host; jax.distributed.initialize()
# finds the others), streams their output, and after a preemption creates the slice again and
# resumes from the gs:// workdir's latest checkpoint (docs/launch.md).
#
#   launch/tpu_vm.sh [options] CONFIG WORKDIR [--config.x=y ...]
#   launch/tpu_vm.sh --type=v4-32 --zone=us-central2-b --spot \
#     --tfds-data-dir=gs://my-bucket/tfds configs/cifar10.py gs://my-bucket/runs/cifar10
#
# Options (default):
#   --name=NAME        TPU VM / queued-resource name (dgan-jax)
#   --zone=ZONE        zone (us-central2-b)
#   --type=TYPE        accelerator type, e.g. v4-8, v4-32, v5litepod-16 (v4-8)
#   --version=VERSION  TPU software version (tpu-ubuntu2204-base)
#   --project=PROJECT  gcloud project (gcloud's configured one)
#   --repo=URL         git URL of dgan_jax to clone on the workers ($DGAN_JAX_REPO)
#   --ref=REF          branch, tag or commit to check out (main)
#   --tfds-data-dir=D  TFDS_DATA_DIR for the workers, e.g. gs://bucket/tfds (tfds's default)
#   --spot             Spot capacity (cheaper, preemptible; the retry loop resumes the run)
#   --queued           create through a queued resource (waits for capacity instead of failing)
#   --retries=N        recreate and resume at most N times after a preemption (20)
#   --delete           delete the TPU when training ends
#   --dry-run          print the gcloud commands instead of running them
set -euo pipefail

name=dgan-jax zone=us-central2-b type=v4-8 version=tpu-ubuntu2204-base project=''
repo=${DGAN_JAX_REPO:-} ref=main tfds_data_dir='' spot=0 queued=0 retries=20 delete=0 dry_run=0
poll_s=${DGAN_JAX_POLL_S:-60}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
fail() { echo "tpu_vm.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --name=*) name=${1#*=} ;;
    --zone=*) zone=${1#*=} ;;
    --type=*) type=${1#*=} ;;
    --version=*) version=${1#*=} ;;
    --project=*) project=${1#*=} ;;
    --repo=*) repo=${1#*=} ;;
    --ref=*) ref=${1#*=} ;;
    --tfds-data-dir=*) tfds_data_dir=${1#*=} ;;
    --retries=*) retries=${1#*=} ;;
    --spot) spot=1 ;;
    --queued) queued=1 ;;
    --delete) delete=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) fail "unknown option $1 (launch/tpu_vm.sh --help lists them)" ;;
    *) break ;;
  esac
  shift
done
[ $# -ge 2 ] || fail 'usage: launch/tpu_vm.sh [options] CONFIG WORKDIR [--config.x=y ...]'
config=$1 workdir=$2
shift 2
case $workdir in
  gs://*) ;;
  *) fail "WORKDIR must be a gs:// path ($workdir): every worker writes the same checkpoints, and a" \
          "preempted VM loses its disk. Use e.g. gs://my-bucket/runs/name." ;;
esac
[[ $retries =~ ^[0-9]+$ ]] || fail "--retries must be a whole number, got $retries"
[ -n "$repo" ] || fail 'no repository: pass --repo=https://github.com/<org>/dgan_jax.git or set DGAN_JAX_REPO.'

where=(--zone="$zone")
[ -n "$project" ] && where+=(--project="$project")
capacity=()
[ "$spot" = 1 ] && capacity=(--spot)

dry_state=NOT_FOUND   # --dry-run: no TPU at first, READY once "created".

# Prints a command (one line, words quoted where the shell needs it) and runs it unless --dry-run.
run() {
  local line='+' word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then line+=" $word"; else line+=" ${word@Q}"; fi
  done
  echo "$line"
  [ "$dry_run" = 1 ] || "$@"
}

state() {   # READY, CREATING, PREEMPTED, TERMINATED, ... or NOT_FOUND
  if [ "$dry_run" = 1 ]; then echo "$dry_state"; return; fi
  gcloud compute tpus tpu-vm describe "$name" "${where[@]}" --format='value(state)' 2>/dev/null \
    || echo NOT_FOUND
}

create() {
  if [ "$queued" = 1 ]; then
    run gcloud compute tpus queued-resources create "$name" --node-id="$name" "${where[@]}" \
      --accelerator-type="$type" --runtime-version="$version" "${capacity[@]}"
  else
    run gcloud compute tpus tpu-vm create "$name" "${where[@]}" --accelerator-type="$type" \
      --version="$version" "${capacity[@]}"
  fi
  dry_state=READY
  until [ "$(state)" = READY ]; do echo "waiting for $name ($(state))"; sleep "$poll_s"; done
}

delete_tpu() {
  if [ "$queued" = 1 ]; then
    run gcloud compute tpus queued-resources delete "$name" "${where[@]}" --force --quiet
  else
    run gcloud compute tpus tpu-vm delete "$name" "${where[@]}" --quiet
  fi
}

on_all_workers() {
  run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker=all --command="$1"
}

quoted_overrides=''
for a in "$@"; do quoted_overrides+=" $(printf '%q' "$a")"; done
install_cmd="set -e; [ -d dgan_jax ] || git clone -q $(printf '%q' "$repo") dgan_jax; cd dgan_jax; \
git fetch -q origin $(printf '%q' "$ref"); git checkout -q --detach FETCH_HEAD; \
python3 -m pip install -q -e \".[tpu]\""
env_prefix=''
[ -n "$tfds_data_dir" ] && env_prefix="TFDS_DATA_DIR=$(printf '%q' "$tfds_data_dir") "
train_cmd="set -o pipefail; cd dgan_jax && ${env_prefix}python3 -m dgan_jax.main --config=$(printf '%q' "$config") \
--workdir=$(printf '%q' "$workdir") --config.train.distributed=True$quoted_overrides \
2>&1 | tee -a ~/dgan_jax_train.log"

attempt=0
while :; do
  case $(state) in
    READY) ;;
    NOT_FOUND) create ;;
    *) echo "$name is $(state): deleting it and creating it again"; delete_tpu; create ;;
  esac
  on_all_workers "$install_cmd"
  if on_all_workers "$train_cmd"; then
    echo "training finished: $workdir"
    break
  fi
  s=$(state)
  if [ "$s" = READY ]; then
    fail "training failed on a healthy TPU (not a preemption); see the output above and" \
         "dgan_jax_train.log in the workers' home folders. Fix it and run this script again: it resumes."
  fi
  attempt=$((attempt + 1))
  [ "$attempt" -le "$retries" ] || fail "gave up after $retries preemptions; run again to resume."
  echo "$name is $s (preempted?): recreating and resuming (attempt $attempt of $retries)"
done
if [ "$delete" = 1 ]; then delete_tpu; fi
