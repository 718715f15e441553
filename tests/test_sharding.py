"""The sharded (4 CPU devices) loss and step equal the single-device ones."""
import jax
import numpy as np

from bagssl_jax import optim, sharding, steps
from tests.conftest import load_config


def _setup(config, mesh):
  model = steps.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size, 10, 10)
  init = steps.make_init(model, tx, config)
  repl = sharding.replicated(mesh)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  state_sharding = jax.tree.map(lambda _: repl, abstract)
  state = jax.jit(init, out_shardings=state_sharding)(jax.random.PRNGKey(0))
  loss_fn = jax.jit(steps.make_loss_fn(model, config),
                    in_shardings=(repl, state_sharding, repl,
                                  sharding.batch_sharding(mesh)),
                    out_shardings=repl)
  step = jax.jit(steps.make_train_step(model, tx, lr, config, 10),
                 in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
                 out_shardings=(state_sharding, repl))
  return state, loss_fn, step


def test_sharded_loss_and_step_equal_single_device():
  assert jax.device_count() == 4, "conftest sets 4 CPU devices"
  config = load_config("fashion_mnist_vicreg", "runlocal")
  rng = np.random.default_rng(0)
  batch = {"patches": rng.integers(0, 256, (16, 2, 14, 14, 1), np.uint8),
           "label": np.zeros((16,), np.int32)}
  results = {}
  for n in (1, 4):
    mesh = sharding.make_mesh({"data": -1}, jax.devices()[:n])
    state, loss_fn, step = _setup(config, mesh)
    gbatch = sharding.global_batch(batch, mesh)
    assert len(gbatch["patches"].sharding.device_set) == n
    loss, (metrics, _, _) = loss_fn(state.params, state,
                                    jax.random.PRNGKey(1), gbatch)
    new_state, _ = step(state, gbatch)
    results[n] = (float(loss), jax.device_get(metrics),
                  jax.device_get(new_state.params),
                  jax.device_get(new_state.batch_stats))
  np.testing.assert_allclose(results[1][0], results[4][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[1][1:]),
                  jax.tree.leaves(results[4][1:])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mesh_shape_resolves_the_rest():
  assert sharding.mesh_shape({"data": -1}, 8) == {"data": 8}
  assert sharding.mesh_shape({"data": -1, "fsdp": 2}, 8) == {"data": 4,
                                                              "fsdp": 2}
