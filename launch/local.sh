#!/usr/bin/env bash
# Run BagSSL on this machine (CPU, or all local GPUs when jax[cuda12] is installed).
#   CONFIG   config file[:variant]   (default configs/fashion_mnist_vicreg.py)
#   WORKDIR  run directory           (default runs/<config name>)
#   DRY_RUN=1 prints the command instead of running it.
# Extra arguments are passed on, e.g. --config.total_steps=100.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/fashion_mnist_vicreg.py}
name=$(basename "${CONFIG%%:*}" .py)
WORKDIR=${WORKDIR:-runs/$name}
cmd=(python -m bagssl_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then echo "${cmd[*]}"; else exec "${cmd[@]}"; fi
