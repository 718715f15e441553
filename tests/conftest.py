"""Test setup: 4 fake CPU devices (sharding tests), shared small fixtures."""
import os
import sys

# Tests are compile-bound (tiny models, a few steps): XLA's backend
# optimisations cost ~5x more compile time than they save. Set before the CPU
# backend starts; subprocesses that tests launch inherit it.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_backend_optimization_level=0").strip()

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
jax.config.update("jax_num_cpu_devices", 4)


def load_config(name, arg=None):
  """get_config(arg) of configs/<name>.py."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "configs", name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture
def runlocal_config():
  config = load_config("fashion_mnist_vicreg", "runlocal")
  return config
