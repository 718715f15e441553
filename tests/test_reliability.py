"""Reliability pieces in-process: workdir lock and config check, checkpoint
fallback (truncated / unreadable / non-finite / half-written), the NaN guard,
the SIGTERM watcher. The CLI runs (SIGTERM → resume, truncated checkpoint,
divergence) are in test_resume.py."""
import json
import os
import signal
import socket
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bagssl_jax import checkpoints, numerics, preemption, preflight
from bagssl_jax import config as config_lib
from bagssl_jax import workdir as workdir_lib
from bagssl_jax.data import sources
from tests.conftest import load_config


# ------------------------------------------------------------------ lock ---
def _dead_pid():
  proc = subprocess.Popen(["true"])
  proc.wait()
  return proc.pid


def _write_lock(workdir, **owner):
  with open(os.path.join(workdir, workdir_lib.LOCK_NAME), "w") as f:
    json.dump({"host": socket.gethostname(), "since": 0, **owner}, f)


def test_lock_refuses_live_owner_and_takes_over_stale(tmp_path):
  workdir = str(tmp_path)
  path = workdir_lib.acquire(workdir)  # we hold it: a second acquire is refused
  with pytest.raises(workdir_lib.WorkdirError, match="in use by pid"):
    with open(path) as f:  # another live process (our parent) holding it
      owner = json.load(f)
    _write_lock(workdir, pid=os.getppid(), boot_id=owner["boot_id"])
    workdir_lib.acquire(workdir)
  _write_lock(workdir, pid=os.getppid(), host="another-host")
  with pytest.raises(workdir_lib.WorkdirError, match="another-host"):
    workdir_lib.acquire(workdir)
  _write_lock(workdir, pid=_dead_pid())  # stale: the owner is gone
  path = workdir_lib.acquire(workdir)
  with open(path) as f:
    assert json.load(f)["pid"] == os.getpid()
  workdir_lib.release(path)
  assert not os.path.exists(path)
  assert os.listdir(workdir) == []  # no temporary files left


def test_config_check_lists_model_fields_and_ignores_run_control(tmp_path):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  workdir = str(tmp_path)
  workdir_lib.write_config(workdir, config)
  changed = load_config("fashion_mnist_vicreg", "runlocal")
  changed.total_steps, changed.run_eval, changed.eval.knn_k = 99, False, 5
  changed.data.num_workers = 2
  assert workdir_lib.check_config(workdir, changed) == []
  changed.model.width, changed.loss.vicreg.sim_coeff = 16, 30.
  with pytest.raises(workdir_lib.WorkdirError) as e:
    workdir_lib.check_config(workdir, changed)
  assert "config.model.width: 8 -> 16" in str(e.value)
  assert "config.loss.vicreg.sim_coeff: 25.0 -> 30.0" in str(e.value)
  assert "total_steps" not in str(e.value)
  changed.allow_config_change = True
  assert len(workdir_lib.check_config(workdir, changed)) == 2
  workdir_lib.write_config(workdir, changed)  # the old one is kept
  assert len([f for f in os.listdir(workdir) if f.startswith("config.")]) == 2
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(workdir_lib.WorkdirError, match="cannot read"):
    workdir_lib.check_config(workdir, config)


def test_drop_metrics_after(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      "".join(json.dumps({"step": s, "loss": 1.}) + "\n" for s in (1, 5, 9)))
  workdir_lib.drop_metrics_after(str(tmp_path), 5)
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [1, 5]


# ----------------------------------------------------------- checkpoints ---
def _tree(value):
  return {"w": jnp.full((64, 8), value, jnp.float32),
          "step": jnp.int32(int(value))}


def _save_steps(workdir, values):
  mgr = checkpoints.manager(workdir, keep=10)
  for v in values:
    checkpoints.save(mgr, int(v), _tree(v), wait=True)
  mgr.close()


def _truncate_state(workdir, step):
  d = os.path.join(workdir, "checkpoints", str(step), "state")
  for root, _, files in os.walk(d):
    for f in files:
      path = os.path.join(root, f)
      os.truncate(path, os.path.getsize(path) // 2)


def test_restore_falls_back_past_truncated_and_nonfinite(tmp_path, caplog):
  workdir = str(tmp_path)
  _save_steps(workdir, [1., 2., 3.])
  mgr = checkpoints.manager(workdir, keep=10)
  checkpoints.save(mgr, 4, {"w": jnp.full((64, 8), jnp.nan),
                            "step": jnp.int32(4)}, wait=True)
  mgr.close()
  _truncate_state(workdir, 3)
  # A half-written save (orbax's temporary directory) is never "newest".
  os.makedirs(os.path.join(workdir, "checkpoints",
                           "9.orbax-checkpoint-tmp", "state"))
  abstract = jax.eval_shape(lambda: _tree(0.))
  mgr = checkpoints.manager(workdir)
  assert mgr.latest_step() == 4
  state, step = checkpoints.restore_newest(mgr, abstract)
  assert step == 2 and float(state["w"][0, 0]) == 2.
  assert sorted(mgr.all_steps()) == [1, 2]
  mgr.close()
  assert sorted(os.listdir(tmp_path / "checkpoints_corrupt")) == ["3", "4"]
  warnings = [r.getMessage() for r in caplog.records
              if "cannot be restored" in r.getMessage()]
  assert len(warnings) == 2 and "step 4" in warnings[0], warnings
  assert "non-finite" in warnings[0] and "step 3" in warnings[1]
  assert all("\n" not in w for w in warnings)
  # The run that holds the workdir cleans orbax's leftovers (in the
  # background; a save waits for it).
  mgr = checkpoints.manager(workdir, cleanup_tmp=True)
  checkpoints.save(mgr, 3, _tree(3.), wait=True)
  mgr.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2", "3"]


def test_restore_with_nothing_readable_raises_and_moves_nothing(tmp_path):
  workdir = str(tmp_path)
  _save_steps(workdir, [1., 2.])
  _truncate_state(workdir, 1)
  _truncate_state(workdir, 2)
  mgr = checkpoints.manager(workdir)
  with pytest.raises(checkpoints.CheckpointError,
                     match="no checkpoint .* can be restored .*step 2.*step 1"):
    checkpoints.restore_newest(mgr, jax.eval_shape(lambda: _tree(0.)))
  assert sorted(mgr.all_steps()) == [1, 2]
  assert not (tmp_path / "checkpoints_corrupt").exists()


# ------------------------------------------------------------- NaN guard ---
def test_finite_guard_checks_previous_step_then_newest():
  guard = numerics.FiniteGuard()
  ok = {"loss": jnp.float32(1.), "grad_norm": jnp.float32(2.)}
  bad = {"loss": jnp.float32(1.), "grad_norm": jnp.float32(jnp.inf)}
  guard.watch(1, ok)
  guard.watch(2, bad)  # checks step 1 only
  with pytest.raises(numerics.NonFiniteError, match="step 2: .*grad_norm=inf"):
    guard.check_now()
  guard.watch(3, ok)
  with pytest.raises(numerics.NonFiniteError, match="train state at step 3"):
    guard.check_now(3, {"w": jnp.array([1., jnp.nan])})


# ------------------------------------------------------------ preemption ---
def test_sigterm_sets_the_flag_and_close_restores_the_handler():
  before = signal.getsignal(signal.SIGTERM)
  watcher = preemption.PreemptionWatcher()
  assert not watcher.reached(1)
  os.kill(os.getpid(), signal.SIGTERM)
  assert watcher.reached(2)
  watcher.close()
  assert signal.getsignal(signal.SIGTERM) == before


def test_validate_rejects_bad_reliability_fields():
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.bad_images = "ignore"
  with pytest.raises(config_lib.ConfigError, match="config.data.bad_images"):
    config_lib.validate(config)
  config.data.bad_images = "skip"
  config.checkpoint_every_steps = 0
  with pytest.raises(config_lib.ConfigError,
                     match="config.checkpoint_every_steps"):
    config_lib.validate(config)


# ----------------------------------------------------------------- input ---
def _folder_with_bad_image(root):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(root / "train" / "a")
  for i in range(6):
    Image.fromarray(np.full((28, 28), i, np.uint8)).save(
        root / "train" / "a" / f"{i}.png")
  (root / "train" / "a" / "3.png").write_bytes(b"junk")


def test_undecodable_image_stops_or_is_skipped_as_configured(tmp_path):
  _folder_with_bad_image(tmp_path)
  stop = sources.image_folder(str(tmp_path), "train", 1, "stop")
  assert stop[2]["image"].shape == (28, 28, 1)
  with pytest.raises(sources.DataError, match="3.png.*bad_images=skip"):
    stop[3]  # pylint: disable=pointless-statement
  skip = sources.image_folder(str(tmp_path), "train", 1, "skip")
  assert int(skip[3]["image"][0, 0, 0]) == 4  # the next decodable image
  assert skip.skipped == {3}


def test_eval_without_labels_is_refused_before_training(tmp_path,
                                                        monkeypatch):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  unlabelled = sources.ArraySource(np.zeros((32, 28, 28, 1), np.uint8),
                                   np.full((32,), -1, np.int32), None)
  monkeypatch.setattr(preflight, "load_source", lambda *a: unlabelled)
  with pytest.raises(sources.DataError, match="no labels.*run_eval=False"):
    preflight.check_inputs(config, 1, 1)
  config.run_eval = False
  assert preflight.check_inputs(config, 1, 1)[1] == (28, 28, 1)
