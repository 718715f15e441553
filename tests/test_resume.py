"""Acceptance of preemption-safe exact resume, as the CLI runs it.

Run B trains 40 steps uninterrupted. Run A is the same command, sent SIGTERM
once its first checkpoint (step 10) appears, then restarted: it must exit 0
after saving at the step it reached, resume there, and end with B's params.
Copies of the workdirs then get a truncated newest checkpoint (the run falls
back to the previous one, still ending on B's params) and a diverging state
(the run stops with the step and loss terms, saving nothing).

The subprocesses share a persistent compilation cache: B compiles, the rest
load its executables (~4 s instead of ~15 s of CPU each).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bagssl_jax import checkpoints
from bagssl_jax.data import sources
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")

COMMAND = [sys.executable, "-m", "bagssl_jax.main",
           "--config=configs/fashion_mnist_vicreg.py:runlocal",
           "--config.total_steps=40", "--config.checkpoint_every_steps=10",
           "--config.run_eval=False"]


def _env(cache):
  xla_flags = os.environ.get("XLA_FLAGS", "")  # conftest's -O0 included
  return dict(os.environ, XLA_FLAGS=xla_flags +
              " --xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=cache,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _run(workdir, env):
  return subprocess.run(COMMAND + [f"--workdir={workdir}"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("resume")
  env = _env(str(base / "cache"))
  a, b = str(base / "A"), str(base / "B")
  out = {"env": env, "A": a, "B": b, "base": base}
  out["B_proc"] = _run(b, env)
  assert out["B_proc"].returncode == 0, out["B_proc"].stderr[-3000:]
  with open(base / "A1.log", "w") as log:
    proc = subprocess.Popen(COMMAND + [f"--workdir={a}"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not os.path.isdir(os.path.join(a, "checkpoints", "10")):
      assert proc.poll() is None and time.time() < deadline, (
          (base / "A1.log").read_text()[-3000:])
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out["A1_rc"] = proc.wait(timeout=120)
  out["A1_log"] = (base / "A1.log").read_text()
  out["A1_steps"] = sorted(int(s) for s in os.listdir(
      os.path.join(a, "checkpoints")))
  out["A2_proc"] = _run(a, env)
  return out


def _max_rel_diff(workdir_a, workdir_b):
  a, b = checkpoints.load(workdir_a), checkpoints.load(workdir_b)
  assert a.step == b.step == 40
  worst = 0.
  for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    worst = max(worst, np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-12))
  return worst


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f)}


def test_sigterm_saves_exits_0_and_resume_matches_uninterrupted_run(runs):
  assert runs["A1_rc"] == 0, runs["A1_log"][-3000:]
  last = runs["A1_steps"][-1]
  assert 10 <= last < 40 and f"preempted: saved step {last}" in runs["A1_log"]
  a2 = runs["A2_proc"]
  assert a2.returncode == 0, a2.stderr[-3000:]
  assert f"Resumed from {runs['A']}/checkpoints at step {last}" in a2.stderr
  assert _max_rel_diff(runs["A"], runs["B"]) <= 1e-5
  assert not os.path.exists(os.path.join(runs["A"], ".lock"))
  # metrics.jsonl reads as one run: every step once.
  assert sorted(_losses(runs["A"])) == list(range(1, 41))


def test_same_config_and_seed_give_bit_identical_losses(runs):
  a, b = _losses(runs["A"]), _losses(runs["B"])
  first = range(1, 11)  # logged by A before the SIGTERM
  assert [a[s] for s in first] == [b[s] for s in first]
  assert len(set(b.values())) > 5  # the losses do change from step to step


def test_truncated_newest_checkpoint_falls_back_to_previous(runs):
  c = str(runs["base"] / "C")
  shutil.copytree(runs["A"], c)
  state_dir = os.path.join(c, "checkpoints", "40", "state")
  for root, _, files in os.walk(state_dir):
    for f in files:
      os.truncate(os.path.join(root, f), os.path.getsize(
          os.path.join(root, f)) // 2)
  proc = _run(c, runs["env"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  warnings = [l for l in proc.stderr.splitlines()
              if "cannot be restored" in l]
  assert len(warnings) == 1 and "step 40" in warnings[0], proc.stderr[-3000:]
  assert "at step 30" in proc.stderr
  assert os.listdir(os.path.join(c, "checkpoints_corrupt")) == ["40"]
  assert _max_rel_diff(c, runs["B"]) <= 1e-5  # steps 31..40 again, exactly


def test_diverging_run_stops_with_step_and_loss_terms_saving_nothing(runs):
  d = str(runs["base"] / "D")
  shutil.copytree(runs["B"], d)
  shutil.rmtree(os.path.join(d, "checkpoints", "40"))
  _blow_up_params(d, 30)  # finite but huge: the next step overflows
  before = sorted(os.listdir(os.path.join(d, "checkpoints")))
  proc = _run(d, runs["env"])
  assert proc.returncode == 3, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert "non-finite loss or gradient norm at step 31" in errors[0]
  assert "invariance=" in errors[0] and "variance=" in errors[0]
  assert "last good checkpoint is step 30" in errors[0]
  assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == before
  assert not os.path.exists(os.path.join(d, ".lock"))


def _blow_up_params(workdir, step):
  """Rewrites checkpoint `step` with every param set to 1e30 (no compile)."""
  config = checkpoints.read_config(workdir)
  _, abstract = checkpoints.abstract_train_state(config)
  mgr = checkpoints.manager(workdir)
  state = checkpoints.restore(mgr, step, abstract)
  state = state.replace(params=jax.tree.map(
      lambda x: np.full(x.shape, 1e30, x.dtype), state.params))
  data = os.path.join(workdir, "data_of_step")
  shutil.copytree(os.path.join(workdir, "checkpoints", str(step), "data"), data)
  mgr.delete(step)
  checkpoints.save(mgr, step, state, wait=True)
  mgr.close()
  shutil.copytree(data, os.path.join(workdir, "checkpoints", str(step), "data"))
  shutil.rmtree(data)


def test_bucket_workdir_sigterm_exact_resume_eval_and_load(runs, gcs_bucket,
                                                           tmp_path):
  """A runlocal run with --workdir=gs://... on a real GCS API server: killed
  by SIGTERM after its first checkpoint, resumed to B's params; the eval
  binary and `checkpoints.load` read it there; nothing lands on local disk."""
  from bagssl_jax import paths  # pylint: disable=g-import-not-at-top
  bucket, gcs_env = gcs_bucket
  workdir = f"gs://{bucket}/run"
  env = dict(runs["env"], **gcs_env)
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  env["PYTHONPATH"] = ROOT
  command = [COMMAND[0], "-m", "bagssl_jax.main",
             "--config=" + os.path.join(ROOT, COMMAND[3].split("=", 1)[1])
             ] + COMMAND[4:] + [f"--workdir={workdir}"]
  with open(tmp_path / "g1.log", "w") as log:
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not paths.exists(f"{workdir}/checkpoints/10/state"):
      assert proc.poll() is None and time.time() < deadline, (
          (tmp_path / "g1.log").read_text()[-3000:])
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, (tmp_path / "g1.log").read_text()[-3000:]
  assert "preempted: saved step" in (tmp_path / "g1.log").read_text()
  resumed = subprocess.run(command, cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Resumed from {workdir}/checkpoints at step" in resumed.stderr
  assert _max_rel_diff(workdir, runs["B"]) <= 1e-5
  rows = paths.read_jsonl(f"{workdir}/metrics.jsonl")
  assert sorted(r["step"] for r in rows if "loss" in r) == list(range(1, 41))
  assert not paths.exists(f"{workdir}/.lock")
  assert paths.exists(f"{workdir}/config.json")
  assert paths.exists(f"{workdir}/loss_curve.png")
  assert any(paths.path(f"{workdir}/tensorboard").iterdir())
  evaluated = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.eval", f"--workdir={workdir}",
       "--config.eval.protocols=('central','4_patches')",
       "--config.eval.tsne_images=0", "--config.eval.low_shot=()"],
      cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  results = json.loads(paths.read_text(f"{workdir}/eval/results.json"))
  assert {"central", "4_patches"} <= set(results)
  assert paths.exists(f"{workdir}/eval/results.md")
  assert paths.exists(f"{workdir}/eval/accuracy_vs_patches.png")
  assert os.listdir(cwd) == []  # no local `gs:` folder, nothing else


def _start_with_workers(command, env, log_path, **popen_kwargs):
  """Starts a run with 2 grain workers (`command` ends with --workdir=W),
  logging to `log_path`; returns it and its worker pids at checkpoint 10."""
  workdir = command[-1].split("=", 1)[1]
  with open(log_path, "w") as log:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, **popen_kwargs)
  deadline = time.time() + 300
  while not os.path.isdir(os.path.join(workdir, "checkpoints", "10")):
    assert proc.poll() is None and time.time() < deadline, (
        log_path.read_text()[-3000:])
    time.sleep(0.05)
  workers = [p for p in subprocess.run(
      ["pgrep", "-P", str(proc.pid)], capture_output=True,
      text=True).stdout.split() if "spawn_main" in _cmdline(p)]
  assert len(workers) == 2
  return proc, workers


def _resumes_to_b(command, runs, workdir, tolerance):
  resumed = subprocess.run(command, cwd=ROOT, env=runs["env"],
                           capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr
  assert _max_rel_diff(workdir, runs["B"]) <= tolerance


def test_sigterm_to_the_process_group_with_grain_workers(runs, tmp_path):
  """SLURM and GCE signal every process: with data.num_workers=2 the grain
  workers ignore SIGTERM, the main process saves, and the run resumes to B's
  params."""
  workdir = str(tmp_path / "E")
  command = COMMAND + ["--config.data.num_workers=2", f"--workdir={workdir}"]
  proc, workers = _start_with_workers(command, runs["env"],
                                      tmp_path / "e1.log", process_group=0)
  os.killpg(proc.pid, signal.SIGTERM)  # the main process and its workers
  time.sleep(0.5)  # the main process saves for seconds after this
  assert all(_state(p) not in ("Z", "gone") for p in workers)
  rc = proc.wait(timeout=120)
  text = (tmp_path / "e1.log").read_text()
  assert rc == 0 and "preempted: saved step" in text, text[-3000:]
  _resumes_to_b(command, runs, workdir, 1e-5)


def test_a_worker_killed_from_outside_ends_the_run_and_resume_is_exact(
    runs, tmp_path):
  """kill -9 of one grain worker (as the OOM killer does): the run stops
  with one error line naming the worker, a non-zero exit and no hang; the
  same command then resumes from the last checkpoint to B's params."""
  workdir = str(tmp_path / "K")
  command = COMMAND + ["--config.data.num_workers=2", f"--workdir={workdir}"]
  proc, workers = _start_with_workers(command, runs["env"],
                                      tmp_path / "k1.log")
  os.kill(int(workers[0]), signal.SIGKILL)
  rc = proc.wait(timeout=120)
  text = (tmp_path / "k1.log").read_text()
  errors = [l for l in text.splitlines() if l.startswith("error:")]
  assert rc == 2 and len(errors) == 1, text[-3000:]
  assert "Traceback" not in text, text[-3000:]
  assert f"(pid {workers[0]}) was killed by signal 9" in errors[0]
  assert "rerun the same command" in errors[0]
  _resumes_to_b(command, runs, workdir, 0)


def _cmdline(pid):
  try:
    with open(f"/proc/{pid}/cmdline") as f:
      return f.read()
  except OSError:
    return ""


def _state(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0]
  except OSError:
    return "gone"
