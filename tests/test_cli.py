"""The entry point: bad config values stop before compiling (no checkpoint,
no config.json written) with one `error:` line and no traceback."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _main(*args, devices=1, tmp):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count="
             f"{devices}", JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "bagssl_jax.main",
       "--config=configs/fashion_mnist_vicreg.py:runlocal",
       f"--workdir={tmp}", *args], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300)


@pytest.mark.parametrize("args,devices,field", [
    (["--config.method=simclrr"], 1, "config.method"),
    (["--config.patch_size=40"], 1, "config.patch_size"),
    (["--config.batch_size=18"], 4, "config.batch_size"),
    (["--config.optimizer.name=adam_typo"], 1, "config.optimizer.name"),
    (["--config.data.path=/nonexistent", "--config.data.name=fashion_mnist"],
     1, "/nonexistent"),
    (["--config.multi_view=bogus"], 1, "config.multi_view"),
    (["--config.crop=bogus"], 1, "config.crop"),
    (["--config.data.name=image_folder"], 1, "data.path"),
    (["--config.loss.sim_coeff=50"], 1, "--config.loss.sim_coeff=50"),
    (["--config=configs/nonexistent.py"], 1, "nonexistent.py"),
    (["--coordinator_address=localhost:1234"], 1, "--num_processes"),
])
def test_bad_config_one_line_error(tmp_path, args, devices, field):
  proc = _main(*args, devices=devices, tmp=tmp_path)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and field in errors[0], proc.stderr[-2000:]
  assert not (tmp_path / "checkpoints").exists()
  assert not (tmp_path / "config.json").exists()
