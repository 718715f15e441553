"""Layouts on 4 CPU devices: the loss and the step of data parallelism
(replicated parameters) and of FSDP equal the single-device ones."""
import jax
import numpy as np
import pytest

from bagssl_jax import models, optim, sharding, steps
from tests.conftest import load_config

# Compared against float64/NumPy references: full-precision matmuls on any
# backend (TF32 on GPU and bf16 passes on TPU by default).
pytestmark = pytest.mark.usefixtures("exact_matmuls")


def _compile(config, model, tx, lr, abstract, mesh, param_sharding):
  state_sharding = sharding.state_shardings(abstract, mesh, param_sharding,
                                            fsdp_min_size=1024)
  repl, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  loss_fn = jax.jit(steps.make_loss_fn(model, config),
                    in_shardings=(state_sharding.params, state_sharding, repl,
                                  batch), out_shardings=repl)
  step = jax.jit(steps.make_train_step(model, tx, lr, config, 10),
                 in_shardings=(state_sharding, batch),
                 out_shardings=(state_sharding, repl))
  return state_sharding, loss_fn, step


def test_replicated_and_fsdp_equal_single_device():
  assert jax.device_count() == 4, "conftest sets 4 CPU devices"
  config = load_config("fashion_mnist_vicreg", "runlocal")
  rng = np.random.default_rng(0)
  batch = {"patches": rng.integers(0, 256, (16, 2, 14, 14, 1), np.uint8),
           "label": np.zeros((16,), np.int32)}
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size, 10, 10)
  init = steps.make_init(model, tx, config)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  host_state = jax.device_get(jax.jit(init)(jax.random.PRNGKey(0)))
  layouts = {"1 device": ({"data": -1}, jax.devices()[:1], "replicated"),
             "data=4": ({"data": -1}, jax.devices(), "replicated"),
             "data=2 fsdp=2": ({"data": 2, "fsdp": 2}, jax.devices(), "fsdp")}
  results = {}
  for name, (axes, devices, param_sharding) in layouts.items():
    mesh = sharding.make_mesh(axes, devices)
    state_sharding, loss_fn, step = _compile(config, model, tx, lr, abstract,
                                             mesh, param_sharding)
    state = jax.device_put(host_state, state_sharding)
    gbatch = sharding.global_batch(batch, mesh)
    assert len(gbatch["patches"].sharding.device_set) == len(devices)
    loss, (metrics, _, _) = loss_fn(state.params, state,
                                    jax.random.PRNGKey(1), gbatch)
    new_state, _ = step(state, gbatch)
    if param_sharding == "fsdp":  # big kernels and their momenta are split
      kernel = new_state.params["projector"]["dense1"]["kernel"]
      assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
      assert kernel.addressable_shards[0].data.shape == (64, 32)
      assert (sharding.bytes_per_device(new_state.opt_state) <
              0.7 * sharding.bytes_per_device(host_state.opt_state))
    results[name] = (float(loss), jax.device_get(metrics),
                     jax.device_get(new_state.params),
                     jax.device_get(new_state.batch_stats))
  want = results.pop("1 device")
  for name, got in results.items():
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, err_msg=name)
    for a, b in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(want[1:])):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_mesh_shape_resolves_the_rest():
  assert sharding.mesh_shape({"data": -1}, 8) == {"data": 8}
  assert sharding.mesh_shape({"data": -1, "fsdp": 2}, 8) == {"data": 4,
                                                              "fsdp": 2}
  for bad in ({"data": 3}, {"data": -1, "fsdp": -1}, {"model": 2},
              {"data": 0}):
    with pytest.raises(ValueError, match="config.mesh"):
      sharding.mesh_shape(bad, 8)


def test_fsdp_rule_splits_the_largest_divisible_dim_of_big_leaves():
  spec = lambda shape: sharding.fsdp_spec(shape, 8, 2**16)
  P = jax.sharding.PartitionSpec
  assert spec((2048, 8192)) == P(None, "fsdp")  # projector kernel
  assert spec((8192, 8192)) == P(None, "fsdp")  # tie: the output dim
  assert spec((3, 3, 256, 512)) == P(None, None, None, "fsdp")
  assert spec((1, 1, 1024, 2048)) == P(None, None, None, "fsdp")
  assert spec((8192,)) == P()  # biases and norms stay replicated
  assert spec((7, 7, 3, 64)) == P()  # small stem
  assert spec((3, 3, 1001, 1003)) == P()  # nothing divisible by 8
  assert sharding.fsdp_spec((2048, 8192), 1, 2**16) == P()


def test_process_batch_block_of_a_single_process_mesh():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2})
  assert sharding.process_batch_block(mesh) == (0, 1)
  assert sharding.batch_sharding(mesh).spec == jax.sharding.PartitionSpec(
      ("data", "fsdp"))
  assert sharding.data_parallel_size(mesh) == 4
