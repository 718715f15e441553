#!/usr/bin/env bash
#SBATCH --job-name=bagssl
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --output=slurm-%j.out
# Pretrain on several GPU nodes under SLURM: one JAX process per GPU (srun
# starts GPUS_PER_NODE tasks on every node, each seeing the node's GPUs); the
# processes join with jax.distributed.initialize() (--distributed=on), which
# reads the coordinator (first node), the process count and this task's id
# from SLURM and gives each process the GPU of its SLURM_LOCALID: 2 nodes x 8
# GPUs = 16 processes, 16 devices. Each process reads only its block of every
# global batch.
#
# Preemption and time limits: 300 s before the limit SLURM sends USR1 to this
# script, which signals every task with SIGTERM (`scancel --signal=TERM`): the
# run saves a checkpoint at a step all processes agree on and exits 0, then the
# script requeues the job (`scontrol requeue`), which resumes from that
# checkpoint. A scheduler preemption signals the tasks itself and requeues the
# job (--requeue). The workdir lock is released on the way out.
#
# Setup once on a shared filesystem: the repository, a Python environment with
#   pip install -r requirements.txt && pip install -U "jax[cuda12]"
# and the TFDS ArrayRecord data (see README: "TFDS data at scale").
# Run (from the repository root; change the #SBATCH lines to your cluster):
#   TFDS_DATA_DIR=/shared/tfds WORKDIR=/shared/runs/in1k sbatch launch/slurm_multinode.sh
#
# Variables:
#   CONFIG          config file[:variant]   (default configs/imagenet_vicreg.py)
#   WORKDIR         run directory every node can write: a shared filesystem or
#                   a bucket, gs://... (required unless DRY_RUN=1)
#   TFDS_DATA_DIR   TFDS data_dir, passed as --config.data.path (default unset)
#   DTYPE           compute dtype           (default bfloat16)
#   PARAM_SHARDING  replicated | fsdp (FSDP inside a node, data across nodes)
#   NODES           nodes          (default SLURM_JOB_NUM_NODES, else 2)
#   GPUS_PER_NODE   processes per node (default SLURM_GPUS_ON_NODE, else 8)
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
NODES=${NODES:-${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-2}}}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
cmd=(srun --kill-on-bad-exit=1 --nodes="$NODES" --ntasks-per-node="$GPUS_PER_NODE"
     "$PYTHON" -m bagssl_jax.main
     --config="$CONFIG" --workdir="$WORKDIR" --distributed=on
     --config.dtype="$DTYPE" --config.param_sharding="$PARAM_SHARDING")
if [[ "$PARAM_SHARDING" == fsdp ]]; then  # FSDP inside a node, data across
  cmd+=(--config.mesh.data=-1 --config.mesh.fsdp="$GPUS_PER_NODE")
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
  exit 0
fi
requeue=0
on_time_limit() {  # USR1 from --signal: checkpoint now, then requeue
  echo "$(date +%T) time limit near: SIGTERM to every task, then requeue" >&2
  requeue=1
  scancel --signal=TERM "$SLURM_JOB_ID"
}
trap on_time_limit USR1
trap ':' TERM  # a preemption signals the tasks itself: wait for their save
"${cmd[@]}" &
srun_pid=$!
while true; do
  rc=0
  wait "$srun_pid" || rc=$?
  if ! kill -0 "$srun_pid" 2>/dev/null; then break; fi  # wait cut by a signal
done
if [[ "$requeue" == 1 && "$rc" == 0 ]]; then
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$rc"
