"""Every method trains on runlocal; BYOL's EMA target; the RRC baseline."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bagssl_jax import checkpoints, methods, steps, train
from bagssl_jax.data import augment
from bagssl_jax.data import patches, pipeline, sources
from tests.conftest import load_config

needs_fmnist = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")


@needs_fmnist
@pytest.mark.parametrize("method", methods.names("resnet"))
def test_each_method_trains_on_runlocal(tmp_path, method):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.method = method
  config.num_patches = 3  # exercises the multi-view forms too
  # Both multi-view forms are exercised (one method in two with "mean").
  config.multi_view = ("mean" if methods.names("resnet").index(method) % 2
                       else "pairs")
  config.total_steps, config.run_eval = 2, False
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 2
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows and all(np.isfinite(r["loss"]) for r in rows), rows
  assert all(np.isfinite(np.asarray(x)).all()
             for x in jax.tree.leaves(state.params))
  if not methods.get(method).target:
    assert state.target is None
    return
  # The target is an EMA of the online network (no predictor), not a copy.
  assert "predictor" in state.params and "predictor" not in state.target[
      "params"]
  online = state.params["backbone"]["stem_conv"]["kernel"]
  target = state.target["params"]["backbone"]["stem_conv"]["kernel"]
  assert not np.allclose(online, target)
  # ... and it is checkpointed with the rest of the state.
  mgr = checkpoints.manager(str(tmp_path), 3)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), state)
  restored = checkpoints.restore(mgr, 2, abstract, None)
  np.testing.assert_array_equal(
      restored.target["params"]["backbone"]["stem_conv"]["kernel"], target)
  mgr.close()


def test_target_momentum_schedule():
  assert float(steps.target_momentum(0, 100, 0.99)) == pytest.approx(0.99)
  assert float(steps.target_momentum(50, 100, 0.99)) == pytest.approx(0.995)
  assert float(steps.target_momentum(100, 100, 0.99)) == pytest.approx(1.0)


def test_random_resized_crop_boxes():
  boxes = patches.random_resized_crops(0, np.arange(500), 4, (28, 40))
  top, left, h, w = np.moveaxis(boxes, -1, 0)
  assert boxes.shape == (500, 4, 4)
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= 28).all() and (left + w <= 40).all()
  area = h * w / (28 * 40)
  assert area.min() >= 0.07 and area.max() <= 1.0
  assert 0.3 < area.mean() < 0.7  # uniform in [0.08, 1] before clipping
  ratio = w / h
  assert (ratio > 3 / 4 * 0.8).all() and (ratio < 4 / 3 * 1.25).all()
  # Counter-based: the boxes of an example do not depend on its batch.
  np.testing.assert_array_equal(
      boxes[10:20], patches.random_resized_crops(0, np.arange(10, 20), 4,
                                                 (28, 40)))
  assert not np.array_equal(boxes, patches.random_resized_crops(
      1, np.arange(500), 4, (28, 40)))


def test_crop_and_resize_matches_slicing():
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, 12, 12, 3))
  boxes = jnp.array([[[0., 0., 12., 12.], [2., 3., 6., 6.]]] * 2)
  out = augment.crop_and_resize(images, boxes, 12)
  np.testing.assert_allclose(out[:, 0], images, atol=1e-5)
  crop = augment.crop_and_resize(images, boxes[:, 1:], 6)
  np.testing.assert_allclose(crop[:, 0], images[:, 2:8, 3:9], atol=1e-5)


@needs_fmnist
def test_rrc_baseline_pipeline_and_views():
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.crop, config.input_size = "rrc", 20
  source = sources.load_source(config.data, "train")
  batch = next(pipeline.make_train_iterator(config, source))
  assert batch["image"].shape == (16, 28, 28, 1)
  assert batch["boxes"].shape == (16, 2, 4)
  views = augment.train_views(jax.random.PRNGKey(0), batch, config)
  assert views.shape == (32, 20, 20, 1)
  assert np.isfinite(np.asarray(views)).all()
