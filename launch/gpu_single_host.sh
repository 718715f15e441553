#!/usr/bin/env bash
# Pretrain on every GPU of one host: one JAX process; the mesh spans all local
# GPUs (data parallel, or FSDP with PARAM_SHARDING=fsdp).
#
# Setup once:  pip install -r requirements.txt && pip install -U "jax[cuda12]"
#              tfds build imagenet2012 --file_format=array_record \
#                --manual_dir=DIR_WITH_THE_TARS --data_dir="$TFDS_DATA_DIR"
# Run:         TFDS_DATA_DIR=/data/tfds bash launch/gpu_single_host.sh
#
# Variables:
#   CONFIG          config file[:variant]   (default configs/imagenet_vicreg.py)
#   WORKDIR         run directory           (default runs/<config name>)
#   TFDS_DATA_DIR   TFDS data_dir of the ArrayRecord builds, passed as
#                   --config.data.path      (default: unset, TFDS's default)
#   DTYPE           compute dtype           (default bfloat16; params stay f32)
#   PARAM_SHARDING  replicated | fsdp       (default replicated; fsdp splits the
#                   big kernels and their optimizer state over all GPUs)
#   CUDA_VISIBLE_DEVICES  the GPUs to use   (default: all)
#   DRY_RUN=1       print the command instead of running it
# Extra arguments are passed on, e.g. --config.batch_size=1024.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/imagenet_vicreg.py}
name=$(basename "${CONFIG%%:*}" .py)
WORKDIR=${WORKDIR:-runs/$name}
DTYPE=${DTYPE:-bfloat16}
PARAM_SHARDING=${PARAM_SHARDING:-replicated}
cmd=(python -m bagssl_jax.main --config="$CONFIG" --workdir="$WORKDIR"
     --distributed=off --config.dtype="$DTYPE"
     --config.param_sharding="$PARAM_SHARDING")
if [[ "$PARAM_SHARDING" == fsdp ]]; then
  cmd+=(--config.mesh.data=1 --config.mesh.fsdp=-1)
fi
if [[ -n "${TFDS_DATA_DIR:-}" ]]; then
  cmd+=(--config.data.path="$TFDS_DATA_DIR")
fi
# Prints a command as shell input (arguments quoted only where needed).
show() {
  local out=() a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+=("$a"); else out+=("${a@Q}"); fi
  done
  echo "${out[*]}"
}
cmd+=("$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  show "${cmd[@]}"
else
  exec "${cmd[@]}"
fi
