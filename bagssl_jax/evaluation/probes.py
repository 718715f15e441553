"""Frozen-feature evaluation: linear probe (logistic regression) and weighted kNN.

Both take plain numpy / jax arrays: features float (n, d), labels int (n,).
"""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

_STD_EPS = 1e-6
_NORM_EPS = 1e-12


def accuracy(logits_or_preds, labels) -> float:
  """Top-1 accuracy from (n, C) logits or (n,) integer predictions."""
  p = np.asarray(logits_or_preds)
  if p.ndim == 2:
    p = p.argmax(-1)
  return float(np.mean(p == np.asarray(labels)))


# ----------------------------------------------------------------------------
# Linear probe.
# ----------------------------------------------------------------------------


def _softmax0_unrolled(z):
  """Softmax over a short axis 0 as elementwise ops over rows (fast on CPU)."""
  m = functools.reduce(jnp.maximum, list(z))
  e = jnp.exp(z - m)
  return e / functools.reduce(jnp.add, list(e))


def _grads(p, xb, yb, num_classes, unrolled):
  """Closed-form gradient of the mean softmax cross-entropy.

  Logits are kept as (C, m) so both products are plain GEMMs once vmapped over
  the grid (about 2x faster on CPU than autodiff of the (m, C) layout). The
  unrolled softmax is faster un-vmapped, jax.nn.softmax faster vmapped.
  """
  logits = p["W"] @ xb.T + p["b"][:, None]                 # (C, m)
  probs = (_softmax0_unrolled(logits) if unrolled
           else jax.nn.softmax(logits, axis=0))
  delta = (probs - jax.nn.one_hot(yb, num_classes, axis=0, dtype=probs.dtype))
  delta = delta / xb.shape[0]
  return {"W": delta @ xb, "b": delta.sum(1)}


def _fit_one(x, y, lr, wd, key, *, num_classes, steps, batch_size,
             unrolled=False):
  """Fits softmax regression with AdamW (decay on W only) from zero init."""
  n, d = x.shape
  params = {"W": jnp.zeros((num_classes, d), x.dtype),
            "b": jnp.zeros((num_classes,), x.dtype)}
  # Cosine decay to 0: a constant lr leaves the minibatch noise in the final
  # weights (~1 point below scikit-learn's converged fit on 512-dim features).
  opt = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=wd,
                    mask={"W": True, "b": False})

  def step(carry, i):
    p, s = carry
    if batch_size is None:
      xb, yb = x, y
    else:
      idx = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, n)
      xb, yb = x[idx], y[idx]
    u, s = opt.update(_grads(p, xb, yb, num_classes, unrolled), s, p)
    return (optax.apply_updates(p, u), s), None

  (params, _), _ = lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
  return params


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size"))
def _fit_grid(x, y, lrs, wds, key, *, num_classes, steps, batch_size):
  """vmap of `_fit_one` over a flat grid of (lr, wd); x, y shared (unbatched)."""
  fit = functools.partial(_fit_one, num_classes=num_classes, steps=steps,
                          batch_size=batch_size)
  if lrs.shape[0] == 1:  # refit: no vmap, CPU-friendlier softmax
    p = fit(x, y, lrs[0], wds[0], key, unrolled=num_classes <= 64)
    return jax.tree_util.tree_map(lambda a: a[None], p)
  return jax.vmap(fit, in_axes=(None, None, 0, 0, None))(x, y, lrs, wds, key)


@jax.jit
def _grid_accuracy(params, x, y):
  """Accuracy of every grid member: params leaves have a leading grid axis."""
  logits = jnp.einsum("nd,gcd->gnc", x, params["W"]) + params["b"][:, None, :]
  return jnp.mean(logits.argmax(-1) == y[None, :], axis=-1)


def linear_probe(train_x, train_y, test_x, test_y, num_classes, *,
                 learning_rates=(1e-3, 3e-3, 1e-2),
                 weight_decays=(0.0, 1e-4, 1e-3), steps=300,
                 holdout_fraction=0.1, batch_size=None, seed=0) -> dict:
  """Multinomial logistic-regression probe with a held-out (lr, wd) sweep.

  Features are standardised with the train-set mean/std (computed once on the
  whole train set, then applied to train, held-out and test). The model
  logits = x @ W.T + b (W: (C, d)) starts at zero and is trained for `steps`
  AdamW steps (lr cosine-decayed to 0) on the mean softmax cross-entropy; weight decay is AdamW's
  decoupled decay (update -= lr * wd * W) and applies to W only.
  `batch_size=None` means full batch, otherwise each step draws `batch_size`
  rows with replacement from a PRNG seeded by `seed`.

  A `holdout_fraction` of train (fixed-seed permutation) is held out; every
  (lr, wd) pair is fitted on the rest in one jit'ed, vmapped call; the best
  held-out accuracy wins (first in lr-major grid order on ties). The winner
  is refitted on all of train and evaluated on test.

  Returns {"accuracy", "learning_rate", "weight_decay", "val_accuracy"}.
  """
  train_x = np.asarray(train_x, np.float32)
  test_x = np.asarray(test_x, np.float32)
  train_y = np.asarray(train_y, np.int32)
  test_y = np.asarray(test_y, np.int32)
  n = train_x.shape[0]
  if batch_size is not None:
    batch_size = int(batch_size)

  mu = train_x.mean(0)
  sd = train_x.std(0) + _STD_EPS
  train_x = (train_x - mu) / sd
  test_x = (test_x - mu) / sd

  rng = np.random.default_rng(seed)
  perm = rng.permutation(n)
  n_val = min(max(1, int(round(n * holdout_fraction))), n - 1)
  val_idx, fit_idx = perm[:n_val], perm[n_val:]

  grid = list(itertools.product(learning_rates, weight_decays))
  lrs = jnp.asarray([g[0] for g in grid], jnp.float32)
  wds = jnp.asarray([g[1] for g in grid], jnp.float32)
  key = jax.random.PRNGKey(seed)
  kw = dict(num_classes=int(num_classes), steps=int(steps),
            batch_size=batch_size)

  params = _fit_grid(jnp.asarray(train_x[fit_idx]), jnp.asarray(train_y[fit_idx]),
                     lrs, wds, key, **kw)
  val_acc = np.asarray(_grid_accuracy(params, jnp.asarray(train_x[val_idx]),
                                      jnp.asarray(train_y[val_idx])))
  best = int(np.argmax(val_acc))
  lr, wd = grid[best]

  params = _fit_grid(jnp.asarray(train_x), jnp.asarray(train_y),
                     lrs[best:best + 1], wds[best:best + 1], key, **kw)
  test_acc = _grid_accuracy(params, jnp.asarray(test_x), jnp.asarray(test_y))
  return {"accuracy": float(test_acc[0]), "learning_rate": lr,
          "weight_decay": wd, "val_accuracy": float(val_acc[best])}


# ----------------------------------------------------------------------------
# Weighted kNN.
# ----------------------------------------------------------------------------


def _l2_normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _NORM_EPS)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk(q, train_n, train_y, temperature, *, k, num_classes):
  """Predictions for one chunk of queries against L2-normalised train rows."""
  sim = _l2_normalize(q) @ train_n.T                       # (chunk, n_train)
  top_sim, top_idx = lax.top_k(sim, k)                     # (chunk, k)
  w = jnp.exp(top_sim / temperature)
  onehot = jax.nn.one_hot(train_y[top_idx], num_classes, dtype=w.dtype)
  votes = jnp.einsum("qk,qkc->qc", w, onehot)
  return votes.argmax(-1)


def query_shardings(devices=None):
  """(rows, replicated) shardings over this process's devices: kNN splits
  the test queries over them and gives each the train rows, so a GPU node's
  devices share the similarity matmuls (one device: as before)."""
  mesh = jax.sharding.Mesh(np.array(devices or jax.local_devices()),
                           ("queries",))
  return (jax.sharding.NamedSharding(mesh, jax.P("queries")),
          jax.sharding.NamedSharding(mesh, jax.P()))


def pad_rows(x, multiple):
  """x zero-padded to a multiple of `multiple` rows."""
  extra = -len(x) % multiple
  return np.concatenate([x, np.zeros((extra,) + x.shape[1:], x.dtype)]) if extra else x


def knn_predict(train_x, train_y, test_x, num_classes, *, k=20,
                temperature=0.07, chunk_size=1024, devices=None) -> np.ndarray:
  """Weighted-kNN class predictions (n_test,) int; see `knn_classify`. Each
  chunk of queries is split over `devices` (default: this process's)."""
  rows, replicated = query_shardings(devices)
  n_dev = rows.mesh.size
  train_x = jax.device_put(np.asarray(train_x, np.float32), replicated)
  train_y = jax.device_put(np.asarray(train_y, np.int32), replicated)
  test_x = np.asarray(test_x, np.float32)
  k = int(min(k, train_x.shape[0]))
  n_test = test_x.shape[0]
  chunk_size = int(max(1, min(chunk_size, n_test)))
  chunk_size += -chunk_size % n_dev  # an equal share per device
  train_n = jax.jit(_l2_normalize, out_shardings=replicated)(train_x)
  temp = jnp.float32(temperature)
  preds = []
  for start in range(0, n_test, chunk_size):
    q = test_x[start:start + chunk_size]
    m = q.shape[0]
    q = pad_rows(q, chunk_size)  # every chunk has one shape -> one compile
    p = _knn_chunk(jax.device_put(q, rows), train_n, train_y, temp, k=k,
                   num_classes=int(num_classes))
    preds.append(np.asarray(p)[:m])
  return np.concatenate(preds) if preds else np.zeros((0,), np.int32)


def knn_classify(train_x, train_y, test_x, test_y, num_classes, *, k=20,
                 temperature=0.07, chunk_size=1024) -> float:
  """Weighted kNN accuracy (DINO / solo-learn style).

  Cosine similarity between L2-normalised features; each test point takes its
  top-k train neighbours and each neighbour votes exp(sim / temperature) for
  its label; prediction is the argmax of the summed votes (lowest class on
  ties). Test points are processed `chunk_size` at a time (last chunk
  zero-padded) so only a (chunk_size, n_train) similarity block exists.
  """
  preds = knn_predict(train_x, train_y, test_x, num_classes, k=k,
                      temperature=temperature, chunk_size=chunk_size)
  return accuracy(preds, test_y)


# ----------------------------------------------------------------------------
# All probes of one protocol's features.
# ----------------------------------------------------------------------------


def low_shot_indices(labels, fraction, seed=0):
  """Indices of a class-stratified `fraction` of `labels` (>= 1 per class)."""
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  keep = []
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    keep.append(idx[:max(1, int(round(fraction * len(idx))))])
  return np.sort(np.concatenate(keep))


def probe_all(train_x, train_y, test_x, test_y, num_classes, ev):
  """{"linear", "knn" (k = ev.knn_k), "knn_<k>" (ev.knn_extra_k),
  "linear_<pct>%" (probes fit on a stratified ev.low_shot fraction of the
  train labels)} test accuracies for one protocol's features."""
  kw = dict(learning_rates=tuple(ev.probe_learning_rates),
            weight_decays=tuple(ev.probe_weight_decays), steps=ev.probe_steps,
            seed=ev.seed)

  # Train features larger than this stay on the host (evaluation/streamed.py).
  stream = np.asarray(train_x).nbytes > ev.get("probe_device_mb", 2048) * 2**20
  from bagssl_jax.evaluation import streamed  # pylint: disable=g-import-not-at-top

  def fit(idx=None):
    x, y = (train_x, train_y) if idx is None else (train_x[idx], train_y[idx])
    bs = ev.probe_batch_size or None
    bs = None if bs is None or bs >= len(y) else bs
    if stream and idx is None and bs:
      return streamed.linear_probe(x, y, test_x, test_y, num_classes,
                                   batch_size=bs, **kw)["accuracy"]
    return linear_probe(x, y, test_x, test_y, num_classes, batch_size=bs,
                        **kw)["accuracy"]

  out = {"linear": float(fit())}
  for k in (ev.knn_k,) + tuple(ev.get("knn_extra_k", ())):
    acc = (accuracy(streamed.knn_predict(
        train_x, train_y, test_x, num_classes, k=k,
        temperature=ev.knn_temperature), test_y) if stream else knn_classify(
            train_x, train_y, test_x, test_y, num_classes, k=k,
            temperature=ev.knn_temperature))
    out["knn" if k == ev.knn_k and "knn" not in out else f"knn_{k}"] = acc
  for frac in ev.get("low_shot", ()):
    idx = low_shot_indices(train_y, frac, ev.seed)
    out[f"linear_{frac * 100:g}%"] = float(fit(idx))
  return out
