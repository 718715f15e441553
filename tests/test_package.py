"""The package installs with pip: into a fresh virtual environment, then,
from another directory, it trains a runlocal run, loads its checkpoint and
embeds images from the installed copy."""
import os
import shutil
import subprocess
import sys

import pytest

from bagssl_jax.data import sources
from conftest import ROOT

pytestmark = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")

SCRIPT = """
import os, sys
import numpy as np
import bagssl_jax
from bagssl_jax import checkpoints
assert not bagssl_jax.__file__.startswith(sys.argv[2]), bagssl_jax.__file__
m = checkpoints.load(sys.argv[1])
images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), np.uint8)
f = m.embed_images(images, protocol="16_patches")
assert f.shape[0] == 3 and np.isfinite(f).all()
print("embedded", f.shape, "from", os.path.dirname(bagssl_jax.__file__))
"""


def test_pip_install_into_a_fresh_venv_and_use_from_elsewhere(tmp_path):
  pytest.importorskip("setuptools")
  src = tmp_path / "src"  # a copy: the build writes into its source tree
  src.mkdir()
  for name in ("pyproject.toml", "requirements.txt", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  shutil.copytree(os.path.join(ROOT, "bagssl_jax"), src / "bagssl_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  venv = tmp_path / "venv"
  # The dependencies come from the machine's site-packages: the test checks
  # the package and its data, not the network.
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                  str(venv)], check=True, timeout=120)
  python = str(venv / "bin" / "python")
  pip = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps",
                        str(src)], capture_output=True, text=True,
                       timeout=300)
  assert pip.returncode == 0, pip.stderr[-3000:]
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["JAX_PLATFORMS"] = "cpu"
  workdir = tmp_path / "run"
  train = subprocess.run(
      [python, "-m", "bagssl_jax.main",
       f"--config={ROOT}/configs/fashion_mnist_vicreg.py:runlocal",
       "--config.total_steps=2", "--config.run_eval=False",
       f"--workdir={workdir}"], cwd=elsewhere, env=env, capture_output=True,
      text=True, timeout=300)
  assert train.returncode == 0, train.stderr[-3000:]
  use = subprocess.run([python, "-c", SCRIPT, str(workdir), ROOT],
                       cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=300)
  assert use.returncode == 0, use.stderr[-3000:]
  assert "embedded (3," in use.stdout and str(venv) in use.stdout
