"""Scale-out pieces: bf16 compute with f32 params, an FSDP + bf16 run through
the CLI, the launch scripts (syntax, dry runs) and the memory analysis."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bagssl_jax import checkpoints, models, optim, steps
from bagssl_jax import config as config_lib
from bagssl_jax.data import sources
from tests.conftest import ROOT, load_config

needs_fmnist = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")

# LLVM -O0 compiles the CPU programs ~5x faster; neither the numbers checked
# here nor XLA's buffer assignment depend on it.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def _env(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"))


def test_bf16_computes_in_bf16_and_keeps_f32_params_and_loss():
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.dtype = "bfloat16"
  model = models.make_model(config)
  tx, _ = optim.make_optimizer(config.optimizer, config.batch_size, 10, 10)
  state = jax.eval_shape(steps.make_init(model, tx, config),
                         jax.random.PRNGKey(0))
  for x in jax.tree.leaves((state.params, state.batch_stats,
                            state.opt_state)):
    assert x.dtype == np.float32 or x.dtype == np.int32  # int: step counts
  batch = {"patches": jax.ShapeDtypeStruct((16, 2, 14, 14, 1), np.uint8),
           "label": jax.ShapeDtypeStruct((16,), np.int32)}
  lowered = jax.jit(steps.make_loss_fn(model, config)).lower(
      state.params, state, jax.random.PRNGKey(1), batch)
  hlo = lowered.as_text()
  assert re.search(r"stablehlo\.(convolution|dot_general).*bf16", hlo)
  loss_info, (_, stats_info, _) = lowered.out_info
  assert loss_info.dtype == np.float32
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(stats_info))


@pytest.mark.parametrize("field,value", [("dtype", "float16"),
                                         ("param_sharding", "zero3")])
def test_unknown_dtype_or_layout_is_a_config_error(field, value):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config[field] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.{field}"):
    config_lib.validate(config)


@needs_fmnist
def test_fsdp_bf16_run_through_the_cli(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.main",
       "--config=configs/fashion_mnist_vicreg.py:runlocal",
       f"--workdir={tmp_path}", "--config.total_steps=2",
       "--config.run_eval=False", "--config.dtype=bfloat16",
       "--config.param_sharding=fsdp", "--config.mesh.data=2",
       "--config.mesh.fsdp=2", "--config.fsdp_min_size=1024"],
      cwd=ROOT, env=_env(4), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stderr.splitlines() if "train state per" in l)
  assert "{'data': 2, 'fsdp': 2}" in line and "(fsdp, bfloat16" in line
  with open(tmp_path / "metrics.jsonl") as f:
    assert all(np.isfinite(json.loads(l)["loss"]) for l in f)
  params = checkpoints.load(str(tmp_path)).params
  for x in jax.tree.leaves(params):
    assert x.dtype == np.float32 and np.isfinite(np.asarray(x)).all()


def _launch(script, **env):
  return subprocess.run(["bash", f"launch/{script}"], cwd=ROOT, text=True,
                        capture_output=True, env=dict(os.environ, **env),
                        timeout=30)


def test_launch_scripts_parse_and_dry_run():
  scripts = sorted(f for f in os.listdir(os.path.join(ROOT, "launch"))
                   if f.endswith(".sh"))
  assert {"gpu_single_host.sh", "slurm_multinode.sh",
          "tpu_vm_pod.sh"} <= set(scripts)
  for s in scripts:
    proc = subprocess.run(["bash", "-n", f"launch/{s}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (s, proc.stderr)
  gpu = _launch("gpu_single_host.sh", DRY_RUN="1", WORKDIR="/tmp/w",
                TFDS_DATA_DIR="/data/tfds")
  assert gpu.stdout.strip() == (
      "python -m bagssl_jax.main --config=configs/imagenet_vicreg.py "
      "--workdir=/tmp/w --distributed=off --config.dtype=bfloat16 "
      "--config.param_sharding=replicated --config.data.path=/data/tfds")
  slurm = _launch("slurm_multinode.sh", DRY_RUN="1", WORKDIR="/shared/w",
                  PARAM_SHARDING="fsdp", SLURM_JOB_NUM_NODES="4",
                  SLURM_GPUS_ON_NODE="8")
  assert slurm.stdout.strip() == (
      "srun --kill-on-bad-exit=1 --nodes=4 --ntasks-per-node=8 python -m "
      "bagssl_jax.main --config=configs/imagenet_vicreg.py --workdir=/shared/w "
      "--distributed=on --config.dtype=bfloat16 --config.param_sharding=fsdp "
      "--config.mesh.data=-1 --config.mesh.fsdp=8")
  tpu = _launch("tpu_vm_pod.sh", DRY_RUN="1", TPU_NAME="pod", ZONE="z1",
                WORKDIR="gs://b/run")
  assert tpu.stdout.strip() == (
      "gcloud compute tpus tpu-vm ssh pod --zone=z1 --worker=all "
      "'--command=cd bagssl_jax && ~/bagssl-venv/bin/python -m bagssl_jax.main "
      "--config=configs/imagenet_vicreg.py --workdir=gs://b/run "
      "--distributed=on --config.dtype=bfloat16 "
      "--config.param_sharding=replicated '")
  setup = _launch("tpu_vm_pod.sh", DRY_RUN="1", TPU_NAME="pod", ZONE="z1",
                  WORKDIR="gs://b/run", SETUP="1").stdout
  assert "uv venv --python 3.11 ~/bagssl-venv" in setup  # jax needs >= 3.11
  assert "'jax[tpu]'" in setup and "gcsfs google-cloud-storage" in setup
  missing = _launch("tpu_vm_pod.sh", DRY_RUN="1", ZONE="z1")
  assert missing.returncode == 2 and "error: set TPU_NAME" in missing.stderr


def test_memory_analysis_of_a_small_config(tmp_path):
  out = tmp_path / "memory.json"
  proc = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.memory",
       "--config=configs/fashion_mnist_vicreg.py:runlocal", "--devices=4",
       "--layouts=fsdp", "--config.fsdp_min_size=1024", f"--json={out}"],
      cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "| fsdp | {'data': 1, 'fsdp': 4} | 4 |" in proc.stdout
  (r,) = json.loads(out.read_text())
  assert r["platform"] == "cpu" and r["per_device_batch"] == 4
  # Params (f32) and LARS momenta: 8 bytes a parameter unsharded; FSDP holds
  # much less per device.
  assert r["state_bytes"] < 0.6 * 8 * r["params"]
  # The donated train state is an argument, aliased by the output.
  assert r["argument_bytes"] >= r["state_bytes"] > 0
  assert r["alias_bytes"] >= r["state_bytes"] and r["temp_bytes"] > 0


_FAKE_SRUN = r'''#!/usr/bin/env python3
"""srun stand-in: starts --nodes x --ntasks-per-node tasks with SLURM's
per-task variables, waits for all, exits with the worst return code."""
import os, subprocess, sys
args, opts = sys.argv[1:], {}
while args[0].startswith("--"):
  k, _, v = args.pop(0)[2:].partition("=")
  opts[k] = v
nodes, per_node = int(opts["nodes"]), int(opts["ntasks-per-node"])
procs = []
for node in range(nodes):
  for local in range(per_node):
    env = dict(os.environ, SLURM_PROCID=str(node * per_node + local),
               SLURM_LOCALID=str(local), SLURM_NODEID=str(node),
               SLURM_NTASKS=str(nodes * per_node),
               SLURM_STEP_NODELIST=f"gpu[1-{nodes}]",
               SLURM_STEP_NUM_NODES=str(nodes))
    procs.append(subprocess.Popen(args, env=env))
with open(os.environ["FAKE_PIDS"], "w") as f:
  f.write(" ".join(str(p.pid) for p in procs))
sys.exit(max(p.wait() for p in procs))
'''

# A task: records its SLURM ids, then waits; SIGTERM = "checkpoint, exit 0".
_FAKE_TASK = r'''#!/usr/bin/env bash
echo "$SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURM_NTASKS $*" >> "$FAKE_LOG"
trap 'echo "saved $SLURM_PROCID" >> "$FAKE_LOG"; exit 0' TERM
while true; do sleep 0.1; done
'''


def test_slurm_script_starts_a_process_per_gpu_and_requeues(tmp_path,
                                                            monkeypatch):
  """2 nodes x 8 GPUs: 16 processes, each given the GPU of its local id by
  jax.distributed (16 devices); USR1 (time limit near) -> SIGTERM to every
  task, they exit 0, the job is requeued."""
  from jax._src.clusters import cluster  # pylint: disable=g-import-not-at-top
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  scripts = {
      "srun": _FAKE_SRUN, "task": _FAKE_TASK,
      "scancel": '#!/usr/bin/env bash\necho "scancel $*" >> "$FAKE_LOG"\n'
                 'kill -TERM $(cat "$FAKE_PIDS")\n',
      "scontrol": '#!/usr/bin/env bash\necho "scontrol $*" >> "$FAKE_LOG"\n'}
  for name, text in scripts.items():
    (bin_dir / name).write_text(text)
    (bin_dir / name).chmod(0o755)
  log, pids = tmp_path / "log", tmp_path / "pids"
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
             FAKE_LOG=str(log), FAKE_PIDS=str(pids), PYTHON=str(bin_dir / "task"),
             WORKDIR="gs://b/run", SLURM_JOB_ID="4242", SLURM_JOB_NUM_NODES="2",
             SLURM_GPUS_ON_NODE="8")
  job = subprocess.Popen(["bash", "launch/slurm_multinode.sh"], cwd=ROOT,
                         env=env, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 30
    while not (log.exists() and len(log.read_text().splitlines()) >= 16):
      assert job.poll() is None and time.time() < deadline
      time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)
    assert job.wait(timeout=30) == 0, job.stderr.read()
  finally:  # never leave the stand-in tasks behind
    job.kill()
    if pids.exists():
      for pid in pids.read_text().split():
        try:
          os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
          pass
  lines = log.read_text().splitlines()
  tasks = [l.split() for l in lines[:16]]
  assert sorted(int(t[0]) for t in tasks) == list(range(16))
  assert {t[3] for t in tasks} == {"16"}
  assert all("--distributed=on" in t for t in tasks)
  assert lines[16] == "scancel --signal=TERM 4242"
  assert sorted(l for l in lines if l.startswith("saved")) == sorted(
      f"saved {i}" for i in range(16))
  assert lines[-1] == "scontrol requeue 4242"
  # What jax.distributed.initialize() derives in each task: 16 processes,
  # one local GPU each (its SLURM_LOCALID) -> 16 devices, none shared.
  devices = set()
  for procid, localid, nodeid, ntasks, *_ in tasks:
    for k, v in dict(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="gpu[1-2]",
                     SLURM_NTASKS=ntasks, SLURM_PROCID=procid,
                     SLURM_LOCALID=localid).items():
      monkeypatch.setenv(k, v)
    address, n, pid, local_ids = (
        cluster.ClusterEnv.auto_detect_unset_distributed_params(
            None, None, None, None, None, None))
    assert (address.split(":")[0], n, pid) == ("gpu1", 16, int(procid))
    assert local_ids == [int(localid)]
    devices.add((nodeid, local_ids[0]))
  assert len(devices) == 16
