"""Probes over features that stay in host memory (ImageNet scale).

Aggregated features of 1.28M images x 2048 dims are ~10 GB per protocol:
`linear_probe` here keeps them on the host and sends one minibatch per step
to the device (standardised there with train statistics computed in chunks),
so the device holds the (lr x wd) grid's weights and one minibatch; `knn_predict`
sends each chunk of train rows once and keeps a running top-k per test image.
Neither copies the train features: host memory beyond them is O(n) indices.
`probes.probe_all` uses these when the train features exceed
`eval.probe_device_mb`; same results layout and selection rule as
`probes.linear_probe` / `probes.knn_predict`.
"""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bagssl_jax.evaluation import probes


def _rows(x, chunk_mb):
  """Rows of x in a chunk of `chunk_mb` MiB (float32)."""
  return max(1, int(chunk_mb * 2**20) // (4 * x.shape[1]))


def _moments(x, chunk):
  """Mean and std (float32) of the rows of x, in chunks (float64 sums)."""
  s = np.zeros(x.shape[1], np.float64)
  ss = np.zeros(x.shape[1], np.float64)
  for i in range(0, len(x), chunk):
    c = np.asarray(x[i:i + chunk], np.float32)
    s += c.sum(0, dtype=np.float64)
    ss += np.square(c).sum(0, dtype=np.float64)
  mu = s / len(x)
  var = np.maximum(ss / len(x) - mu * mu, 0.)
  return mu.astype(np.float32), (np.sqrt(var) + probes._STD_EPS).astype(  # pylint: disable=protected-access
      np.float32)


def _opt(lr, wd, steps):
  return optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=wd,
                     mask={"W": True, "b": False})


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"),
                   donate_argnums=(0, 1))
def _step(params, states, lrs, wds, xb, yb, mu, sd, *, num_classes, steps):
  xb = (xb - mu) / sd

  def one(p, s, lr, wd):
    g = probes._grads(p, xb, yb, num_classes, False)  # pylint: disable=protected-access
    u, s = _opt(lr, wd, steps).update(g, s, p)
    return optax.apply_updates(p, u), s

  return jax.vmap(one)(params, states, lrs, wds)


def _fit(x, y, rows, lrs, wds, mu, sd, num_classes, steps, batch_size, seed):
  """The grid's weights after `steps` minibatches drawn from x[rows]."""
  g, d = len(lrs), x.shape[1]
  params = {"W": jnp.zeros((g, num_classes, d), jnp.float32),
            "b": jnp.zeros((g, num_classes), jnp.float32)}
  states = jax.vmap(lambda p, lr, wd: _opt(lr, wd, steps).init(p))(
      params, lrs, wds)
  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(rows))

  def draw():
    idx = np.sort(rows[rng.integers(0, len(rows), batch_size)])
    return x[idx], y[idx]

  batch = draw()
  for _ in range(steps):
    params, states = _step(params, states, lrs, wds, *batch, mu, sd,
                           num_classes=num_classes, steps=steps)
    batch = draw()  # gathered while the device steps
    jax.block_until_ready(params)  # one minibatch in flight, not all
  return params


def _accuracies(params, x, y, rows, mu, sd, chunk):
  """Accuracy of each grid member on x[rows] (rows None: all), in chunks."""
  n = len(x) if rows is None else len(rows)
  correct = np.zeros(params["W"].shape[0], np.int64)
  for i in range(0, n, chunk):
    idx = slice(i, i + chunk) if rows is None else rows[i:i + chunk]
    correct += np.asarray(_correct(params, x[idx], y[idx], mu, sd))
  return correct / max(n, 1)


@jax.jit
def _correct(params, x, y, mu, sd):
  x = (x - mu) / sd
  logits = jnp.einsum("nd,gcd->gnc", x, params["W"]) + params["b"][:, None]
  return jnp.sum(logits.argmax(-1) == y[None], axis=-1)


def linear_probe(train_x, train_y, test_x, test_y, num_classes, *,
                 learning_rates=(1e-3, 3e-3, 1e-2),
                 weight_decays=(0.0, 1e-4, 1e-3), steps=300,
                 holdout_fraction=0.1, batch_size=8192, seed=0,
                 chunk_mb=128) -> dict:
  """`probes.linear_probe` (minibatch) with the features left on the host;
  statistics and accuracies in chunks of `chunk_mb` MiB."""
  chunk = _rows(train_x, chunk_mb)
  train_y = np.asarray(train_y, np.int32)
  test_y = np.asarray(test_y, np.int32)
  n = len(train_y)
  mu, sd = _moments(train_x, chunk)
  perm = np.random.default_rng(seed).permutation(n)
  n_val = min(max(1, int(round(n * holdout_fraction))), n - 1)
  val_rows, fit_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
  grid = list(itertools.product(learning_rates, weight_decays))
  lrs = jnp.asarray([g[0] for g in grid], jnp.float32)
  wds = jnp.asarray([g[1] for g in grid], jnp.float32)
  kw = dict(num_classes=int(num_classes), steps=int(steps),
            batch_size=int(batch_size), seed=seed)
  params = _fit(train_x, train_y, fit_rows, lrs, wds, mu, sd, **kw)
  val_acc = _accuracies(params, train_x, train_y, val_rows, mu, sd, chunk)
  best = int(np.argmax(val_acc))
  params = _fit(train_x, train_y, np.arange(n), lrs[best:best + 1],
                wds[best:best + 1], mu, sd, **kw)
  test_acc = _accuracies(params, test_x, test_y, None, mu, sd, chunk)
  return {"accuracy": float(test_acc[0]), "learning_rate": grid[best][0],
          "weight_decay": grid[best][1], "val_accuracy": float(val_acc[best])}


@functools.partial(jax.jit, static_argnames=("k",))
def _merge_top_k(top_sim, top_lab, q, train_chunk, lab_chunk, *, k):
  sim = probes._l2_normalize(q) @ probes._l2_normalize(train_chunk).T  # pylint: disable=protected-access
  sim = jnp.concatenate([top_sim, sim], axis=1)
  lab = jnp.concatenate([top_lab, jnp.broadcast_to(lab_chunk, (
      q.shape[0], lab_chunk.shape[0]))], axis=1)
  s, i = jax.lax.top_k(sim, k)
  return s, jnp.take_along_axis(lab, i, axis=1)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _vote(top_sim, top_lab, temperature, *, num_classes):
  w = jnp.exp(top_sim / temperature)
  onehot = jax.nn.one_hot(top_lab, num_classes, dtype=w.dtype)
  return jnp.einsum("qk,qkc->qc", w, onehot).argmax(-1)


def knn_predict(train_x, train_y, test_x, num_classes, *, k=20,
                temperature=0.07, chunk_mb=128, query_chunk=8192,
                devices=None):
  """`probes.knn_predict` sending train rows to the devices `chunk_mb` MiB
  at a time (each once); the test queries' running top-k stay on the
  devices, split over them (`probes.query_shardings`)."""
  rows, replicated = probes.query_shardings(devices)
  n, m = len(train_y), len(test_x)
  chunk = _rows(train_x, chunk_mb)
  k = int(min(k, n))
  train_y = np.asarray(train_y, np.int32)
  starts = range(0, m, query_chunk)
  sizes = [min(query_chunk, m - i) for i in starts]
  queries = [jax.device_put(probes.pad_rows(np.asarray(
      test_x[i:i + query_chunk], np.float32), rows.mesh.size), rows)
             for i in starts]
  tops = [(jax.device_put(np.full((len(q), k), -np.inf, np.float32), rows),
           jax.device_put(np.zeros((len(q), k), np.int32), rows))
          for q in queries]
  for i in range(0, n, chunk):
    xc = jax.device_put(np.asarray(train_x[i:i + chunk], np.float32),
                        replicated)
    yc = jax.device_put(train_y[i:i + chunk], replicated)
    tops = [_merge_top_k(s, l, q, xc, yc, k=k)
            for (s, l), q in zip(tops, queries)]
    jax.block_until_ready(tops)  # one chunk on the devices at a time
  preds = [_vote(s, l, jnp.float32(temperature), num_classes=int(num_classes))
           for s, l in tops]
  return (np.concatenate([np.asarray(p)[:z] for p, z in zip(preds, sizes)])
          if preds else np.zeros(0, np.int32))


def _peak_memory(n, d, mode, classes=100, steps=20):
  """Peak RSS of one probe + kNN over (n, d) random features beyond the
  features themselves (on CPU the device's buffers are host memory too)."""
  import resource  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, d), np.float32)
  y = rng.integers(0, classes, n).astype(np.int32)
  tx, ty = x[:1000].copy(), y[:1000].copy()
  jnp.zeros(1).block_until_ready()
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
  kw = dict(learning_rates=(1e-3, 1e-2, 1e-1), weight_decays=(0.,),
            steps=steps, batch_size=1024)
  if mode == "streamed":
    linear_probe(x, y, tx, ty, classes, **kw)
    knn_predict(x, y, tx, classes, k=20)
  else:
    probes.linear_probe(x, y, tx, ty, classes, **kw)
    probes.knn_predict(x, y, tx, classes, k=20)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
  print(f"{mode}: n={n} d={d}: features {x.nbytes / 2**20:.0f} MiB, peak RSS "
        f"beyond them {peak - base:.0f} MiB")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  _peak_memory(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
