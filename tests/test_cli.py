"""The entry point: bad config values, data and workdirs stop before compiling
(JAX_LOG_COMPILES shows none) with one `error:` line and no traceback, and
write or change nothing in the workdir."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bagssl_jax import config as config_lib
from tests.conftest import ROOT, load_config


def _main(*args, devices=1, tmp):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count="
             f"{devices}", JAX_PLATFORMS="cpu", JAX_LOG_COMPILES="1")
  return subprocess.run(
      [sys.executable, "-m", "bagssl_jax.main",
       "--config=configs/fashion_mnist_vicreg.py:runlocal",
       f"--workdir={tmp}", *args], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300)


def _assert_one_line_error(proc, field):
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert "Compiling" not in proc.stderr, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and field in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize("args,devices,field", [
    (["--config.method=simclrr"], 1, "config.method"),
    (["--config.model.depth=resnet11"], 1, "config.model.depth"),
    (["--config.patch_size=40"], 1, "config.patch_size"),
    (["--config.batch_size=18"], 4, "config.batch_size"),
    (["--config.optimizer.name=adam_typo"], 1, "config.optimizer.name"),
    (["--config.optimizer.predictor_lr_mult=0"], 1,
     "config.optimizer.predictor_lr_mult"),
    (["--config.data.path=/nonexistent", "--config.data.name=fashion_mnist"],
     1, "/nonexistent"),
    (["--config.data.name=no_such_dataset"], 1, "no_such_dataset"),
    (["--config.multi_view=bogus"], 1, "config.multi_view"),
    (["--config.crop=bogus"], 1, "config.crop"),
    (["--config.data.name=image_folder"], 1, "data.path"),
    (["--config.loss.sim_coeff=50"], 1, "--config.loss.sim_coeff=50"),
    (["--config=configs/nonexistent.py"], 1, "nonexistent.py"),
    (["--config=configs/imagenet_vicreg.py:nosuch"], 1,
     "unknown config variant 'nosuch' (choose from patch=N, rrc, input=N, "
     "views=N, runlocal)"),
    (["--config=configs/fashion_mnist_dino.py:rrc"], 1, "'rrc' is for the"),
    (["--coordinator_address=localhost:1234"], 1, "--num_processes"),
])
def test_bad_config_one_line_error(tmp_path, args, devices, field):
  proc = _main(*args, devices=devices, tmp=tmp_path)
  _assert_one_line_error(proc, field)
  assert not (tmp_path / "checkpoints").exists()
  assert not (tmp_path / "config.json").exists()


def _png(path, size=28):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.zeros((size, size), np.uint8)).save(path)


def _empty_folder(root):
  os.makedirs(root / "train" / "cat")
  return "has no images", root / "train"


def _undecodable(root):  # the first file: checked before compiling
  (root / "train" / "cat").mkdir(parents=True)
  (root / "train" / "cat" / "0.png").write_bytes(b"not an image")
  _png(root / "train" / "cat" / "1.png")
  return "cannot decode image", root / "train" / "cat" / "0.png"


def _labels_missing(root):  # test images without class folders
  _png(root / "train" / "cat" / "0.png")
  _png(root / "test" / "0.png")
  return "has no labels", root / "test"


@pytest.mark.parametrize("make", [_empty_folder, _undecodable,
                                  _labels_missing])
def test_bad_image_folder_one_line_error(tmp_path, make):
  message, path = make(tmp_path / "data")
  workdir = tmp_path / "run"
  proc = _main("--config.data.name=image_folder",
               f"--config.data.path={tmp_path / 'data'}",
               "--config.data.image_size=28", tmp=workdir)
  _assert_one_line_error(proc, message)
  assert str(path) in proc.stderr
  assert not workdir.exists()


def _saved_run(workdir):
  """A workdir as a run of the runlocal config leaves it (no training)."""
  os.makedirs(workdir / "checkpoints" / "2" / "state")
  (workdir / "checkpoints" / "2" / "state" / "x").write_text("kept")
  (workdir / "config.json").write_text(config_lib.to_json(
      load_config("fashion_mnist_vicreg", "runlocal")))


def _unreadable_config(workdir):
  _saved_run(workdir)
  (workdir / "config.json").write_text('{"method": "vic')
  return [], "config.json"


def _locked(workdir):  # by a live process on this host: the test itself
  _saved_run(workdir)
  (workdir / ".lock").write_text(json.dumps(
      {"pid": os.getpid(), "host": socket.gethostname()}))
  return [], f"in use by pid {os.getpid()}"


def _changed_model(workdir):
  _saved_run(workdir)
  return ["--config.model.width=16", "--config.total_steps=9"], (
      "config.model.width: 8 -> 16")


def _not_a_directory(workdir):
  workdir.parent.mkdir(exist_ok=True)
  workdir.write_text("a file")
  return [], "is not a directory"


def _snapshot(path):
  if path.is_file():
    return path.read_text()
  return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None
          for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("make", [_unreadable_config, _locked, _changed_model,
                                  _not_a_directory])
def test_bad_workdir_refused_and_left_untouched(tmp_path, make):
  workdir = tmp_path / "run"
  workdir.mkdir() if make is not _not_a_directory else None
  args, field = make(workdir)
  before = _snapshot(workdir)
  proc = _main(*args, tmp=workdir)
  _assert_one_line_error(proc, field)
  assert _snapshot(workdir) == before
