"""Test setup: 4 fake CPU devices (sharding tests), shared small fixtures."""
import os
import sys

# Tests are compile-bound (tiny models, a few steps): XLA's backend
# optimisations cost ~5x more compile time than they save. Set before the CPU
# backend starts; subprocesses that tests launch inherit it.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_backend_optimization_level=0").strip()
# Many tests compile the same steps (the runlocal config, in-process and in
# the runs they launch): one persistent compilation cache per test run,
# shared by pytest-xdist's workers and every subprocess through the env.
_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile  # pylint: disable=g-import-not-at-top
  _CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
      tempfile.gettempdir(), f"bagssl_jax_tests_cache_{os.getpid()}")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
jax.config.update("jax_num_cpu_devices", 4)


def pytest_unconfigure(config):
  """The process that made the compilation cache (pytest-xdist's controller,
  or pytest alone) removes it at the end of the test run."""
  del config
  if _CACHE:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(_CACHE, ignore_errors=True)


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


def _free_port():
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="package")
def gcs_bucket(tmp_path_factory):
  """A real GCS JSON API server on localhost (gcp-storage-emulator, started
  by tests/gcs_server.py) with an empty bucket; yields (bucket name, env vars that point gcsfs,
  google-cloud-storage and orbax's TensorStore at it). The env vars are set
  in this process too, for the fixture's lifetime."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  pytest.importorskip("gcsfs")
  storage = pytest.importorskip("google.cloud.storage")
  pytest.importorskip("gcp_storage_emulator")
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  log = open(tmp_path_factory.mktemp("gcs") / "emulator.log", "w")  # pylint: disable=consider-using-with
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "tests", "gcs_server.py"), str(port)],
      stdout=log, stderr=subprocess.STDOUT)
  env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
         "GOOGLE_AUTH_TOKEN_FOR_TESTING": "x", "GOOGLE_CLOUD_PROJECT": "test"}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  from google.auth.credentials import AnonymousCredentials  # pylint: disable=g-import-not-at-top
  client = storage.Client(credentials=AnonymousCredentials(), project="test")
  deadline = time.time() + 30
  while True:
    try:
      client.create_bucket("bagssl-test")
      break
    except Exception:  # pylint: disable=broad-except  (server still starting)
      if proc.poll() is not None or time.time() > deadline:
        raise
      time.sleep(0.2)
  try:
    yield "bagssl-test", env
  finally:
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


@pytest.fixture
def exact_matmuls():
  """f32 matmuls and convolutions at full precision: on CPU the default, on
  GPU (TF32) and TPU (one-pass bf16) not, and the tests comparing against
  float64/NumPy references at rtol ~1e-5 need it."""
  with jax.default_matmul_precision("highest"):
    yield
