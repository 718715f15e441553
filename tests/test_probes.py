"""Tests for bagssl_jax.probes (linear probe + weighted kNN).

Probe timings belong to the benchmark suite, not here.
"""

import chex
import jax
import numpy as np
import optax
import pytest

from bagssl_jax.evaluation import probes

C, D, N_TRAIN, N_TEST = 10, 32, 2000, 600
LRS, WDS = (1e-3, 3e-3, 1e-2), (0.0, 1e-4, 1e-3)


def _clusters(seed, spread, n_train=N_TRAIN, n_test=N_TEST, d=D,
              num_classes=C):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, d)) * spread
  ytr = rng.integers(0, num_classes, n_train)
  yte = rng.integers(0, num_classes, n_test)
  xtr = centers[ytr] + rng.normal(size=(n_train, d))
  xte = centers[yte] + rng.normal(size=(n_test, d))
  return xtr.astype(np.float32), ytr, xte.astype(np.float32), yte


@pytest.fixture(scope="module")
def easy():
  return _clusters(0, spread=0.8)  # probe/kNN ~0.98


@pytest.fixture(scope="module")
def hard():  # overlapping clusters: accuracy well below 1
  return _clusters(1, spread=0.35)


def _check_result(r):
  assert set(r) == {"accuracy", "learning_rate", "weight_decay",
                    "val_accuracy"}
  assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["val_accuracy"] <= 1.0
  assert r["learning_rate"] in LRS and r["weight_decay"] in WDS
  assert isinstance(r["accuracy"], float)


def test_linear_probe_separable(easy):
  r = probes.linear_probe(*easy, C)
  _check_result(r)
  assert r["accuracy"] > 0.9 and r["val_accuracy"] > 0.9


def test_linear_probe_minibatch(easy):
  r = probes.linear_probe(*easy, C, batch_size=256, steps=200)
  _check_result(r)
  assert r["accuracy"] > 0.9


def test_knn_separable(easy):
  acc = probes.knn_classify(*easy, C)
  assert isinstance(acc, float) and 0.9 < acc <= 1.0


def test_random_labels_near_chance(easy):
  xtr, _, xte, _ = easy
  rng = np.random.default_rng(123)
  ytr, yte = rng.integers(0, C, len(xtr)), rng.integers(0, C, len(xte))
  r = probes.linear_probe(xtr, ytr, xte, yte, C)
  _check_result(r)
  assert r["accuracy"] < 0.3
  acc = probes.knn_classify(xtr, ytr, xte, yte, C)
  assert 0.0 <= acc < 0.3


def test_linear_probe_scale_offset_invariant(hard):
  xtr, ytr, xte, yte = hard
  r0 = probes.linear_probe(xtr, ytr, xte, yte, C)
  assert 0.3 < r0["accuracy"] < 0.98  # non-trivial regime
  r1 = probes.linear_probe(1000 * xtr + 5, ytr, 1000 * xte + 5, yte, C)
  assert abs(r0["accuracy"] - r1["accuracy"]) <= 0.02
  s = np.random.default_rng(2).uniform(0.01, 100, D).astype(np.float32)
  r2 = probes.linear_probe(xtr * s - 3, ytr, xte * s - 3, yte, C)
  assert abs(r0["accuracy"] - r2["accuracy"]) <= 0.02


def test_custom_grid_membership(hard):
  lrs, wds = (5e-3, 2e-2), (0.0, 5e-2)
  r = probes.linear_probe(*hard, C, learning_rates=lrs, weight_decays=wds,
                          steps=50, holdout_fraction=0.2, seed=3)
  assert r["learning_rate"] in lrs and r["weight_decay"] in wds
  assert 0.0 <= r["accuracy"] <= 1.0


def test_knn_k1_on_train_is_perfect(hard):
  xtr, ytr, _, _ = hard
  assert probes.knn_classify(xtr, ytr, xtr, ytr, C, k=1) == 1.0


def _knn_numpy(xtr, ytr, xte, num_classes, k, temperature):
  a = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
  q = xte / np.linalg.norm(xte, axis=1, keepdims=True)
  sim = q.astype(np.float64) @ a.T.astype(np.float64)
  idx = np.argsort(-sim, axis=1)[:, :k]
  w = np.exp(np.take_along_axis(sim, idx, 1) / temperature)
  votes = np.zeros((len(xte), num_classes))
  for c in range(num_classes):
    votes[:, c] = (w * (ytr[idx] == c)).sum(1)
  return votes.argmax(1)


@pytest.mark.parametrize("chunk_size", [16, 77, 1024])
def test_knn_chunked_matches_numpy(hard, chunk_size):
  xtr, ytr, xte, yte = hard
  xtr, ytr, xte, yte = xtr[:300], ytr[:300], xte[:77], yte[:77]
  ref = _knn_numpy(xtr, ytr, xte, C, k=7, temperature=0.1)
  pred = probes.knn_predict(xtr, ytr, xte, C, k=7, temperature=0.1,
                            chunk_size=chunk_size)
  assert pred.shape == (77,)
  np.testing.assert_array_equal(pred, ref)
  acc = probes.knn_classify(xtr, ytr, xte, yte, C, k=7, temperature=0.1,
                            chunk_size=chunk_size)
  assert acc == float(np.mean(ref == yte))


def test_knn_k_larger_than_train():
  xtr, ytr, xte, yte = _clusters(4, 2.0, n_train=12, n_test=5)
  acc = probes.knn_classify(xtr, ytr, xte, yte, C, k=50)
  assert 0.0 <= acc <= 1.0


@pytest.mark.parametrize("unrolled", [False, True])
def test_closed_form_grads_match_autodiff(unrolled):
  rng = np.random.default_rng(5)
  x = rng.normal(size=(40, 6)).astype(np.float32)
  y = rng.integers(0, 4, 40)
  p = {"W": rng.normal(size=(4, 6)).astype(np.float32),
       "b": rng.normal(size=(4,)).astype(np.float32)}

  def loss(p):
    logits = x @ p["W"].T + p["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  chex.assert_trees_all_close(probes._grads(p, x, y, 4, unrolled),
                              jax.grad(loss)(p), rtol=1e-5, atol=1e-6)


def test_accuracy_helper():
  assert probes.accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
  logits = np.eye(3)[[2, 0, 1]]
  assert probes.accuracy(logits, np.array([2, 0, 0])) == pytest.approx(2 / 3)
