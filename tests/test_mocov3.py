"""MoCo v3: the symmetric InfoNCE against the momentum encoder over the global
batch, its preset, and a real run of `--config.method=mocov3`."""
import jax
import jax.numpy as jnp
import jax.sharding as jsh
import numpy as np
import pytest

from bagssl_jax import methods, models, sharding
from bagssl_jax.methods import mocov3
from tests.conftest import load_config

# Compared against float64/NumPy references: full-precision matmuls on any
# backend (TF32 on GPU and bf16 passes on TPU by default).
pytestmark = pytest.mark.usefixtures("exact_matmuls")


def _ctr_numpy(q, k, t):
  """moco-v3 builder.contrastive_loss: CE(q k^T / t, arange) x 2t."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  logits = q @ k.T / t
  logits = logits - logits.max(1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  return -np.mean(np.diagonal(log_p)) * 2 * t


def _unit(x):
  x = np.asarray(x)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_infonce_matches_the_official_form():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
  for t in (0.2, 1.0):
    np.testing.assert_allclose(mocov3.infonce(jnp.asarray(q), jnp.asarray(k),
                                              t)[0],
                               _ctr_numpy(q, k, t), rtol=1e-5)


def test_symmetric_two_view_loss_and_no_gradient_to_the_target():
  p = jax.random.normal(jax.random.PRNGKey(0), (16, 2, 8))
  k = jax.random.normal(jax.random.PRNGKey(1), (16, 2, 8))
  loss, metrics = mocov3.mocov3_views(p, k, temperature=0.2)
  expected = (_ctr_numpy(np.asarray(p[:, 0]), np.asarray(k[:, 1]), 0.2) +
              _ctr_numpy(np.asarray(p[:, 1]), np.asarray(k[:, 0]), 0.2))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert set(metrics) == {"infonce", "positive_cos"}
  np.testing.assert_allclose(metrics["infonce"], loss, rtol=1e-6)
  # A diagnostic is the mean over pairs, not scaled with the loss.
  cos = [np.mean(np.sum(_unit(p[:, i]) * _unit(k[:, 1 - i]), 1))
         for i in (0, 1)]
  np.testing.assert_allclose(metrics["positive_cos"], np.mean(cos),
                             rtol=1e-5)
  grad_k = jax.grad(lambda k: mocov3.mocov3_views(p, k)[0])(k)
  np.testing.assert_array_equal(grad_k, np.zeros_like(k))
  assert np.abs(jax.grad(lambda p: mocov3.mocov3_views(p, k)[0])(p)).sum() > 0


def test_negatives_are_the_whole_global_batch():
  """Sharded over 4 devices, the loss equals the one-device loss over the
  whole batch (keys gathered), not the mean of per-device losses."""
  p = jax.random.normal(jax.random.PRNGKey(2), (32, 2, 8))
  k = jax.random.normal(jax.random.PRNGKey(3), (32, 2, 8))
  fn = jax.jit(lambda p, k: mocov3.mocov3_views(p, k)[0])
  mesh = sharding.make_mesh({"data": -1}, jax.devices()[:4])
  spec = jsh.NamedSharding(mesh, jsh.PartitionSpec("data"))
  whole = fn(p, k)
  np.testing.assert_allclose(
      fn(jax.device_put(p, spec), jax.device_put(k, spec)), whole, rtol=1e-5)
  per_device = np.mean([fn(p[i:i + 8], k[i:i + 8]) for i in range(0, 32, 8)])
  assert abs(per_device - whole) > 1e-3


def test_preset_and_model():
  method = methods.get("mocov3")
  assert method.predictor and method.target and method.backbone == "resnet"
  config = load_config("fashion_mnist_mocov3")
  assert config.method == "mocov3" and config.model.projector_last_bn
  assert config.loss.mocov3.temperature == 0.2
  model = models.make_model(load_config("fashion_mnist_mocov3", "runlocal"))
  x = jnp.zeros((4, 14, 14, 1))
  variables = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), x, method="init_all"))
  assert "predictor" in variables["params"]
  last = f"bn{len(config.model.projector_dims) - 1}"
  assert last in variables["batch_stats"]["projector"]


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_bad_temperature_is_a_config_error(temperature):
  from bagssl_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.method = "mocov3"
  config.loss.mocov3.temperature = temperature
  with pytest.raises(config_lib.ConfigError, match="temperature"):
    config_lib.validate(config, (28, 28, 1))
