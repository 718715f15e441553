#!/usr/bin/env bash
#SBATCH --job-name=bagssl
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=slurm-%j.out
# Pretrain on several GPU nodes under SLURM: one JAX process per node (srun
# starts one task per node), each driving its node's GPUs; the processes join
# with jax.distributed.initialize(), which reads the coordinator (first node
# of the job), the process count and this task's id from SLURM's environment
# (--distributed=on). Each process reads only its block of every global batch.
#
# Setup once on a shared filesystem: the repository, a Python environment with
#   pip install -r requirements.txt && pip install -U "jax[cuda12]"
# and the TFDS ArrayRecord data (see README: "TFDS data at scale").
# Run (from the repository root; change the #SBATCH lines to your cluster):
#   TFDS_DATA_DIR=/shared/tfds WORKDIR=/shared/runs/in1k sbatch launch/slurm_multinode.sh
#
# Variables:
#   CONFIG          config file[:variant]   (default configs/imagenet_vicreg.py)
#   WORKDIR         run directory on a filesystem every node sees (required
#                   unless DRY_RUN=1; checkpoints are written by all processes)
#   TFDS_DATA_DIR   TFDS data_dir, passed as --config.data.path (default unset)
#   DTYPE           compute dtype           (default bfloat16)
#   PARAM_SHARDING  replicated | fsdp       (default replicated)
#   PYTHON          interpreter             (default python)
#   DRY_RUN=1       print the srun command instead of running it (also works
#                   outside SLURM)
# Extra arguments (sbatch launch/slurm_multinode.sh --config.batch_size=4096)
# are passed on.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
CONFIG=${CONFIG:-configs/imagenet_vicreg.py}
DTYPE=${DTYPE:-bfloat16}
PARAM_SHARDING=${PARAM_SHARDING:-replicated}
PYTHON=${PYTHON:-python}
if [[ -z "${WORKDIR:-}" ]]; then
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    WORKDIR=runs/$(basename "${CONFIG%%:*}" .py)
  else
    echo "error: set WORKDIR to a directory every node can write" >&2
    exit 2
  fi
fi
cmd=(srun --kill-on-bad-exit=1 "$PYTHON" -m bagssl_jax.main
     --config="$CONFIG" --workdir="$WORKDIR" --distributed=on
     --config.dtype="$DTYPE" --config.param_sharding="$PARAM_SHARDING")
if [[ "$PARAM_SHARDING" == fsdp ]]; then  # FSDP inside a node, data across
  cmd+=(--config.mesh.data="${SLURM_NNODES:-2}" --config.mesh.fsdp=-1)
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
