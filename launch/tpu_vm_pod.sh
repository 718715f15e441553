#!/usr/bin/env bash
# Pretrain on a Cloud TPU VM pod slice (e.g. v4-32: 4 workers): run from your
# workstation; gcloud runs the same command on every worker (--worker=all),
# and the workers join with jax.distributed.initialize() (--distributed=on;
# JAX reads the slice's topology from the TPU VM metadata).
#
# Create the slice first, e.g.
#   gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
#     --accelerator-type=v4-32 --version=tpu-ubuntu2204-base
# Data and checkpoints must live where every worker reads and writes: a GCS
# bucket (TFDS_DATA_DIR=gs://bucket/tfds, WORKDIR=gs://bucket/runs/in1k).
#
# Variables:
#   TPU_NAME        the TPU VM slice                        (required)
#   ZONE            its zone, e.g. us-central2-b            (required)
#   PROJECT         GCP project                             (default: gcloud's)
#   WORKDIR         run directory, gs://...                 (required)
#   TFDS_DATA_DIR   TFDS data_dir, gs://...  -> --config.data.path (default unset)
#   CONFIG          config file[:variant]    (default configs/imagenet_vicreg.py)
#   DTYPE           compute dtype            (default bfloat16)
#   PARAM_SHARDING  replicated | fsdp        (default replicated)
#   REPO_DIR        where the code lives on the workers (default bagssl_jax, in $HOME)
#   VENV            the workers' Python environment (default bagssl-venv, in $HOME)
#   PY_VERSION      its Python (default 3.11; the pinned jax needs >= 3.11,
#                   while TPU VM images ship 3.10: uv installs it)
#   SETUP=1         first copy this repository to every worker and create
#                   VENV there with jax[tpu], the requirements and the bucket
#                   extra (gcsfs, google-cloud-storage)
#   DRY_RUN=1       print the gcloud commands instead of running them
# Extra arguments are passed on to bagssl_jax.main, e.g. --config.batch_size=4096.
set -euo pipefail
cd "$(dirname "$0")/.."
for var in TPU_NAME ZONE WORKDIR; do
  if [[ -z "${!var:-}" ]]; then
    echo "error: set $var (see the top of $0)" >&2
    exit 2
  fi
done
CONFIG=${CONFIG:-configs/imagenet_vicreg.py}
DTYPE=${DTYPE:-bfloat16}
PARAM_SHARDING=${PARAM_SHARDING:-replicated}
REPO_DIR=${REPO_DIR:-bagssl_jax}
VENV=${VENV:-bagssl-venv}
PY_VERSION=${PY_VERSION:-3.11}
gcloud_args=(--zone="$ZONE" --worker=all)
if [[ -n "${PROJECT:-}" ]]; then gcloud_args+=(--project="$PROJECT"); fi

# Prints a command as shell input (arguments quoted only where needed).
show() {
  local out=() a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+=("$a"); else out+=("${a@Q}"); fi
  done
  echo "${out[*]}"
}
run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then show "$@"; else "$@"; fi
}

if [[ "${SETUP:-0}" == 1 ]]; then
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_args[@]}" \
      --command="mkdir -p $REPO_DIR"
  run gcloud compute tpus tpu-vm scp --recurse bagssl_jax configs launch \
      requirements.txt "$TPU_NAME:$REPO_DIR" "${gcloud_args[@]}"
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_args[@]}" \
      --command="python3 -m pip install -q --user uv && cd $REPO_DIR && python3 -m uv venv --python $PY_VERSION ~/$VENV && python3 -m uv pip install --python ~/$VENV/bin/python -r requirements.txt 'jax[tpu]' gcsfs google-cloud-storage"
fi

main=(-m bagssl_jax.main --config="$CONFIG" --workdir="$WORKDIR"
      --distributed=on --config.dtype="$DTYPE"
      --config.param_sharding="$PARAM_SHARDING")
if [[ "$PARAM_SHARDING" == fsdp ]]; then
  main+=(--config.mesh.data=1 --config.mesh.fsdp=-1)
fi
if [[ -n "${TFDS_DATA_DIR:-}" ]]; then
  main+=(--config.data.path="$TFDS_DATA_DIR")
fi
main+=("$@")
remote="cd $REPO_DIR && ~/$VENV/bin/python $(printf '%q ' "${main[@]}")"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_args[@]}" \
    --command="$remote"
