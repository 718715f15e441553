"""Multi-process JAX: `jax.distributed.initialize` from flags or the cluster.

`initialize(mode, coordinator_address, num_processes, process_id)` runs
before anything touches a JAX backend:
- explicit: `--coordinator_address=HOST:PORT --num_processes=N
  --process_id=I` on every process (any machine, CPU included);
- `--distributed=on`: `jax.distributed.initialize()` with no arguments, JAX's
  own detection of SLURM (srun), Open MPI, Cloud TPU VM pod slices and GKE;
- `--distributed=auto` (default): the same, but only where the environment
  shows a multi-process launch (SLURM with several tasks, Open MPI with
  several ranks, TPU worker lists of several hosts); otherwise one process;
- `--distributed=off`: one process whatever the environment (explicit
  flags still apply).
On CPU the processes' collectives go over gloo (TCP).
"""
from __future__ import annotations

import os

import jax

MODES = ("auto", "on", "off")


class DistributedError(ValueError):
  """Inconsistent multi-process flags; one-line message."""


def detect_cluster(env=None) -> str | None:
  """The multi-process launcher visible in `env` (os.environ), or None."""
  env = os.environ if env is None else env

  def count(name):
    try:
      return int(env.get(name, "1"))
    except ValueError:
      return 1

  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
           "SLURM_PROCID", "SLURM_LOCALID")  # set by srun (JAX's own check)
  if all(k in env for k in slurm) and count("SLURM_NTASKS") > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and count("OMPI_COMM_WORLD_SIZE") > 1:
    return "openmpi"
  hosts = env.get("TPU_WORKER_HOSTNAMES") or env.get("TPU_PROCESS_ADDRESSES")
  if (hosts and len(hosts.split(",")) > 1) or env.get(
      "MEGASCALE_COORDINATOR_ADDRESS"):
    return "cloud_tpu"
  return None


def check_flags(coordinator_address, num_processes, process_id):
  """Raises DistributedError unless the three flags are all set and agree
  (or none is)."""
  given = [coordinator_address is not None, num_processes is not None,
           process_id is not None]
  if not any(given):
    return
  if not all(given):
    raise DistributedError("--coordinator_address, --num_processes and "
                           "--process_id go together (set all three)")
  if ":" not in coordinator_address:
    raise DistributedError(f"--coordinator_address={coordinator_address}: "
                           "expected HOST:PORT")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise DistributedError(f"--process_id={process_id} must be in "
                           f"[0, --num_processes={num_processes})")


def initialize(mode="auto", coordinator_address=None, num_processes=None,
               process_id=None) -> str:
  """Joins the processes of this run; returns how ('single', 'flags' or the
  detected cluster). Call before any JAX computation."""
  if mode not in MODES:
    raise DistributedError(f"--distributed={mode}: choose from "
                           f"{', '.join(MODES)}")
  check_flags(coordinator_address, num_processes, process_id)
  # CPU processes exchange collectives over TCP (no effect on GPU/TPU).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # Random bits independent of how arrays are sharded (the default in new
  # JAX): init and augmentations are the same on any topology.
  jax.config.update("jax_threefry_partitionable", True)
  if coordinator_address is not None:  # explicit flags win over the mode
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return "flags"
  cluster = detect_cluster()
  if mode == "on" or (mode == "auto" and cluster):
    jax.distributed.initialize()
    return cluster or "jax-detected"
  return "single"
