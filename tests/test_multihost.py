"""Determinism across topologies: 2 processes x 2 CPU devices (localhost
coordinator, gloo collectives) end on the same parameters as 1 process x 4
devices, and the multi-process flags are checked before anything starts."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from bagssl_jax import checkpoints, distributed
from bagssl_jax.data import sources
from tests.conftest import ROOT

needs_fmnist = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")

ARGS = ("--config=configs/fashion_mnist_vicreg.py:runlocal",
        "--config.total_steps=3", "--config.batch_size=32",
        "--config.run_eval=False")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(workdir, devices, *flags):
  # LLVM -O0: compiles ~5x faster; both topologies run the same per-device
  # program, so the comparison is unaffected.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      f"--xla_force_host_platform_device_count={devices} "
      "--xla_backend_optimization_level=0"))
  return subprocess.Popen(
      [sys.executable, "-m", "bagssl_jax.main", *ARGS, f"--workdir={workdir}",
       *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


@needs_fmnist
def test_two_processes_end_on_the_one_process_params(tmp_path):
  port = _free_port()
  two, one = tmp_path / "2x2", tmp_path / "1x4"
  procs = [_start(two, 2, f"--coordinator_address=127.0.0.1:{port}",
                  "--num_processes=2", f"--process_id={p}") for p in (0, 1)]
  procs.append(_start(one, 4))
  try:
    logs = [p.communicate(timeout=400)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  assert "process 1/2" in logs[1] and "2 processes" in logs[0], logs[0][-2000:]
  a, b = checkpoints.load(str(two)), checkpoints.load(str(one))
  assert a.step == b.step == 3
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
  pa, pb = flat(a.params), flat(b.params)
  # Max relative difference over all parameters (float reassociation only).
  assert np.abs(pa - pb).max() / np.abs(pb).max() <= 1e-4
  # Leaf by leaf too; the biases just before a BatchNorm (and VICReg's last,
  # shift-invariant one) get zero gradient: their ~1e-8 values are rounding
  # noise, hence the absolute floor.
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    x, y = np.asarray(x), np.asarray(y)
    assert np.abs(x - y).max() <= 1e-4 * np.abs(y).max() + 1e-6
  # The last step moved the parameters by far more than the tolerance.
  step2 = flat(checkpoints.load(str(two), step=2).params)
  assert np.abs(pa - step2).max() > 100 * np.abs(pa - pb).max()


@pytest.mark.parametrize("flags,message", [
    (dict(coordinator_address="h:1"), "go together"),
    (dict(coordinator_address="host", num_processes=2, process_id=0),
     "HOST:PORT"),
    (dict(coordinator_address="h:1", num_processes=2, process_id=2),
     "--process_id=2"),
])
def test_inconsistent_flags_are_one_line_errors(flags, message):
  with pytest.raises(distributed.DistributedError, match=message):
    distributed.check_flags(flags.get("coordinator_address"),
                            flags.get("num_processes"),
                            flags.get("process_id"))


def test_cluster_detection_from_the_environment():
  slurm = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="n[1-2]",
               SLURM_NTASKS="2", SLURM_PROCID="0", SLURM_LOCALID="0")
  assert distributed.detect_cluster(slurm) == "slurm"
  assert distributed.detect_cluster({**slurm, "SLURM_NTASKS": "1"}) is None
  assert distributed.detect_cluster(
      {"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) == "cloud_tpu"
  assert distributed.detect_cluster({"TPU_WORKER_HOSTNAMES": "w0"}) is None
  assert distributed.detect_cluster({}) is None
