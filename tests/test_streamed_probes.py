"""Probes over host-resident features (evaluation/streamed.py) agree with
the in-device probes."""
import jax
import numpy as np

from bagssl_jax.evaluation import probes, streamed


def _blobs(n, d=16, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 2, (classes, d))
  y = rng.integers(0, classes, n)
  return (centres[y] + rng.normal(0, 1.5, (n, d))).astype(np.float32), y


def test_streamed_knn_equals_in_device_knn():
  x, y = _blobs(670)
  x, y, q = x[:600], y[:600], x[600:]
  ref = probes.knn_predict(x, y, q, 4, k=20)
  got = streamed.knn_predict(x, y, q, 4, k=20, chunk_mb=128 * 16 * 4 / 2**20,
                             query_chunk=32)  # 128-row train chunks
  np.testing.assert_array_equal(got, ref)


def test_knn_split_over_devices_equals_one_device_and_brute_force():
  """Queries split over the 4 local devices (70 and 30-query chunks: not
  multiples of 4, so padded) give one device's predictions, in memory and
  streamed, and those of a NumPy weighted kNN."""
  assert len(jax.local_devices()) == 4
  x, y = _blobs(670, seed=1)
  x, y, q = x[:600], y[:600], x[600:]
  one = jax.local_devices()[:1]
  ref = probes.knn_predict(x, y, q, 4, k=20, devices=one)
  np.testing.assert_array_equal(probes.knn_predict(x, y, q, 4, k=20), ref)
  np.testing.assert_array_equal(
      probes.knn_predict(x, y, q, 4, k=20, chunk_size=30), ref)
  np.testing.assert_array_equal(streamed.knn_predict(
      x, y, q, 4, k=20, chunk_mb=128 * 16 * 4 / 2**20, query_chunk=30), ref)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  qn = q / np.linalg.norm(q, axis=1, keepdims=True)
  sim = qn @ xn.T
  top = np.argsort(-sim, axis=1)[:, :20]
  votes = np.zeros((len(q), 4))
  for i, idx in enumerate(top):
    np.add.at(votes[i], y[idx], np.exp(sim[i, idx] / 0.07))
  assert np.mean(votes.argmax(1) == ref) >= 0.98


def test_streamed_linear_probe_matches_in_device_probe():
  x, y = _blobs(1600)
  x, y, tx, ty = x[:1200], y[:1200], x[1200:], y[1200:]
  kw = dict(learning_rates=(1e-2, 1e-1), weight_decays=(0.0,), steps=60,
            batch_size=64, seed=0)
  ref = probes.linear_probe(x, y, tx, ty, 4, **kw)
  got = streamed.linear_probe(x, y, tx, ty, 4, chunk_mb=256 * 16 * 4 / 2**20,
                              **kw)
  assert got["accuracy"] > 0.6
  assert abs(got["accuracy"] - ref["accuracy"]) <= 0.03, (got, ref)
