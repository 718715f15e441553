"""End-to-end runs: runlocal Fashion-MNIST, resume, ImageNet under mock data."""
import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bagssl_jax import checkpoints, train
from bagssl_jax.evaluation import protocols, tables
from bagssl_jax.data import sources
from tests.conftest import load_config

needs_fmnist = pytest.mark.skipif(
    not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist not installed")


@needs_fmnist
def test_runlocal_end_to_end_and_resume(tmp_path):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.eval.knn_every_steps = 2  # the online kNN monitor: steps 2 and 3
  config.eval.knn_monitor_train_images = 32
  config.eval.knn_monitor_test_images = 16
  workdir = str(tmp_path)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 3
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    knn = [json.loads(l) for l in f if "knn_monitor" in l]
  assert [r["step"] for r in knn] == [2, 3]
  assert all(0 <= r["knn_monitor"] <= 1 for r in knn)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
  with open(os.path.join(workdir, "eval", "results.json")) as f:
    results = json.load(f)
  assert set(tables.protocol_results(results)) == {
      "central", "1_patch", "16_patches", "all_patches"}
  assert set(results["convergence"]) == {"1", "2", "4", "8", "16", "all"}
  for r in tables.protocol_results(results).values():
    assert 0 <= r["linear"] <= 1 and 0 <= r["knn"] <= 1
  for name in ("config.json", "metrics.jsonl", "loss_curve.png"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  # Restarting with more steps resumes from step 3, not from scratch.
  config.total_steps, config.run_eval = 5, False
  config.eval.knn_every_steps = 0
  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == 5
  loaded = checkpoints.load(workdir)
  assert loaded.step == 5
  for a, b in zip(jax.tree.leaves(resumed.params),
                  jax.tree.leaves(loaded.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@needs_fmnist
def test_loss_decreases_on_real_data(tmp_path):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.total_steps, config.run_eval = 25, False
  config.batch_size = 64
  config.optimizer.warmup_epochs = 0
  config.checkpoint_every_steps = 100
  train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(l) for l in f]
  losses = [r["loss"] for r in rows]
  assert all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 1.0, losses


def test_imagenet_runlocal_one_step_under_mock_data(tmp_path):
  config = load_config("imagenet_vicreg", "runlocal")
  config.total_steps = 1
  config.eval.protocols = ("central", "16_patches", "all_patches")
  config.eval.max_train_images = 8
  config.eval.max_test_images = 8
  config.data.test_split = "validation"
  # Figures and health (a ResNet-50 compile of their own) are tested on
  # small models in test_eval.py; this test keeps to the protocols.
  config.eval.figures, config.eval.health_images = False, 0
  with tfds.testing.mock_data(num_examples=32):
    state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 1
  assert all(np.isfinite(np.asarray(x)).all()
             for x in jax.tree.leaves(state.params))
  with open(tmp_path / "eval" / "results.json") as f:
    assert set(tables.protocol_results(json.load(f))) == set(
        config.eval.protocols)
  p = protocols.parse("256_patches")
  assert (p.kind, p.k) == ("random", 256)
