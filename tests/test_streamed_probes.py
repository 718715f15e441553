"""Probes over host-resident features (evaluation/streamed.py) agree with
the in-device probes."""
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
