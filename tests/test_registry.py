"""The method registry: every method is declared by its `Method`, and a new
one plugs into the defaults, the checks, the presets and the train step
without an edit elsewhere."""
import jax
import jax.numpy as jnp
import pytest

from bagssl_jax import config as config_lib
from bagssl_jax import methods, models, optim, steps
from bagssl_jax.config import presets
from bagssl_jax.methods import base


def test_every_method_is_declared_consistently():
  defaults = config_lib.base_config()
  for name, method in methods.METHODS.items():
    assert method.name == name
    assert method.backbone in ("resnet", "vit")
    assert dict(defaults.loss[name]) == dict(method.loss_defaults)
    assert set(method.presets) <= {"fashion_mnist", "cifar", "imagenet"}
    if method.backbone == "resnet":
      assert callable(method.loss), name
    if method.predictor:
      assert method.target, f"{name}: a predictor without a target network"
  with pytest.raises(KeyError, match="choose from"):
    methods.get("no_such_method")


def _cosine_pair(z1, z2, weight=1.0):
  """A toy two-view loss: -weight x mean cosine similarity."""
  return -weight * jnp.mean(jnp.sum(base.l2_normalize(z1) *
                                    base.l2_normalize(z2), -1)), {}


def test_a_new_method_needs_only_its_declaration(monkeypatch):
  toy = base.Method(
      name="toy", loss=base.over_views(_cosine_pair),
      loss_defaults=dict(weight=2.0),
      presets={"fashion_mnist": dict(loss=dict(weight=3.0),
                                     model=dict(projector_dims=(64, 32)))})
  monkeypatch.setitem(methods.METHODS, "toy", toy)
  config = presets.build("fashion_mnist", "toy", "runlocal")
  assert config.loss.toy.weight == 3.0 and config.method == "toy"
  config_lib.validate(config, (28, 28, 1))
  config.loss.toy.bogus = 1
  with pytest.raises(config_lib.ConfigError, match="config.loss.toy"):
    config_lib.validate(config, (28, 28, 1))
  del config.loss.toy["bogus"]
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size, 3, 1)
  state = jax.eval_shape(steps.make_init(model, tx, config),
                         jax.random.PRNGKey(0))
  assert state.target is None and "predictor" not in state.params
  b, n, p = config.batch_size, config.num_patches, config.patch_size
  batch = {"patches": jax.ShapeDtypeStruct((b, n, p, p, 1), jnp.uint8),
           "label": jax.ShapeDtypeStruct((b,), jnp.int32)}
  _, metrics = jax.eval_shape(
      steps.make_train_step(model, tx, lr, config, 3), state, batch)
  assert metrics["loss"].shape == ()
