"""Joint-embedding SSL losses as pure functions of projector outputs.

Every method loss takes `z` of shape (batch, n_views, dim) — the n_views
patches of one image are positives of each other — and returns
`(loss, metrics)`. `method_loss` dispatches on `config.method`.
"""
from __future__ import annotations

import inspect
import itertools
from typing import Callable

import jax
import jax.numpy as jnp

from bagssl_jax import dino


def _off_diagonal_sq_sum(m):
  return jnp.sum(m**2) - jnp.sum(jnp.diagonal(m)**2)


def vicreg_loss(z1, z2, sim_coeff=25., std_coeff=25., cov_coeff=1., eps=1e-4):
  """VICReg (Bardes et al. 2022) with the official normalisation.

  invariance: mean squared error; variance: hinge on the unbiased std,
  averaged over dimensions and halved per branch; covariance: squared
  off-diagonal entries of each branch's unbiased covariance divided by dim.
  """
  n, d = z1.shape
  repr_loss = jnp.mean((z1 - z2)**2)
  z1 = z1 - z1.mean(axis=0)
  z2 = z2 - z2.mean(axis=0)
  std1 = jnp.sqrt(z1.var(axis=0, ddof=1) + eps)
  std2 = jnp.sqrt(z2.var(axis=0, ddof=1) + eps)
  std_loss = (jnp.mean(jax.nn.relu(1. - std1)) +
              jnp.mean(jax.nn.relu(1. - std2))) / 2
  cov1 = z1.T @ z1 / (n - 1)
  cov2 = z2.T @ z2 / (n - 1)
  cov_loss = (_off_diagonal_sq_sum(cov1) + _off_diagonal_sq_sum(cov2)) / d
  loss = sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
  return loss, {"invariance": repr_loss, "variance": std_loss,
                "covariance": cov_loss}


def simclr_loss(z1, z2, temperature=0.1):
  """NT-Xent over the 2n views: cosine similarity / temperature, each view's
  other view the positive, the 2n-2 others negatives, mean over 2n anchors."""
  n = z1.shape[0]
  z = _l2_normalize(jnp.concatenate([z1, z2], axis=0))
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positives = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(log_probs[jnp.arange(2 * n), positives])
  return loss, {"nt_xent": loss,
                "positive_cos": jnp.mean(jnp.sum(z[:n] * z[n:], axis=1))}


def spectral_contrastive_loss(z1, z2, lam=1.0):
  """Minibatch spectral contrastive loss (HaoChen et al. 2021) as in BagSSL:
  -(1/n) sum_i z1_i.z2_i + lam/(n(n-1)) sum_{i!=j} (z1_i.z2_j)^2."""
  n = z1.shape[0]
  g = z1 @ z2.T
  attract = -jnp.mean(jnp.diagonal(g))
  repel = (jnp.sum(g**2) - jnp.sum(jnp.diagonal(g)**2)) / (n * (n - 1))
  return attract + lam * repel, {"attract": attract, "repel": repel}


def _marginals(joint):
  return joint.sum(axis=1), joint.sum(axis=0)


def spectral_contrastive_population_loss(z, joint, lam):
  """Population L_S over K patch types: z (K, d), joint (K, K) summing to 1.
  L_S = -sum_ij P_ij z_i.z_j + lam sum_ij p_i q_j (z_i.z_j)^2."""
  p, q = _marginals(joint)
  g = z @ z.T
  return -jnp.sum(joint * g) + lam * jnp.sum(p[:, None] * q[None] * g**2)


def cooccurrence_loss(z, joint, w):
  """Co-occurrence loss L_C = sum_ij p_i q_j (w z_i.z_j - P_ij/(p_i q_j))^2.
  Proposition 3.1: L_C = 2w L_S(lam=w/2) + sum_ij P_ij^2/(p_i q_j)."""
  p, q = _marginals(joint)
  pq = p[:, None] * q[None]
  return jnp.sum(pq * (w * (z @ z.T) - joint / pq)**2)


def total_coding_rate(z, eps_sq):
  """R(z) = 1/2 logdet(I_d + d/(n eps_sq) z^T z) for z (n, d).

  `eps_sq` is the squared distortion; EMP-SSL's `eps=0.2` is this eps_sq
  (its code divides by n * eps, with eps=0.2)."""
  n, d = z.shape
  # det(I_d + c z^T z) = det(I_n + c z z^T): factor the smaller Gram matrix.
  gram = z.T @ z if d <= n else z @ z.T
  cov = jnp.eye(min(n, d), dtype=z.dtype) + (d / (n * eps_sq)) * gram
  return 0.5 * jnp.linalg.slogdet(cov)[1]


def tcr_loss(z, eps_sq=0.2, inv_coeff=200.0):
  """EMP-SSL / TCR on views z (batch, n_views, d): -mean_v R(z_v) minus
  inv_coeff * mean cosine similarity of each view to the views' mean."""
  z = _l2_normalize(z)
  rate = jnp.mean(jax.vmap(lambda v: total_coding_rate(v, eps_sq), in_axes=1)(z))
  mean = _l2_normalize(jnp.mean(z, axis=1, keepdims=True))
  invariance = jnp.mean(jnp.sum(z * mean, axis=-1))
  return -rate - inv_coeff * invariance, {"coding_rate": rate,
                                          "invariance": invariance}


def byol_loss(p, z):
  """Mean of 2 - 2 cos(p, z) (BYOL); z is the target and gets no gradient
  where the caller stops it."""
  loss = jnp.mean(2. - 2. * jnp.sum(_l2_normalize(p) * _l2_normalize(z), -1))
  return loss, {"byol": loss}


def barlow_twins_loss(z1, z2, lambd=5e-3):
  """Barlow Twins: cross-correlation of batch-standardised embeddings,
  (1 - c_ii)^2 on the diagonal and lambd * c_ij^2 off it."""
  n = z1.shape[0]
  standardise = lambda z: (z - z.mean(0)) / jnp.sqrt(z.var(0) + 1e-5)
  c = standardise(z1).T @ standardise(z2) / n
  on_diag = jnp.sum((1. - jnp.diagonal(c))**2)
  off_diag = _off_diagonal_sq_sum(c)
  return on_diag + lambd * off_diag, {"on_diagonal": on_diag,
                                      "off_diagonal": off_diag}


def _l2_normalize(x, eps=1e-12):
  return x / jnp.sqrt(jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True), eps))


def _average(results):
  loss = sum(r[0] for r in results) / len(results)
  metrics = jax.tree.map(lambda *m: sum(m) / len(results),
                         *[r[1] for r in results])
  return loss, metrics


def all_pairs(pair_loss: Callable) -> Callable:
  """Lifts a two-view loss to (batch, n_views, dim): mean over view pairs i<j."""

  def loss_fn(z, **kwargs):
    pairs = list(itertools.combinations(range(z.shape[1]), 2))
    if not pairs:
      raise ValueError("a joint-embedding loss needs at least 2 views")
    return _average([pair_loss(z[:, i], z[:, j], **kwargs) for i, j in pairs])

  return loss_fn


def to_mean(pair_loss: Callable) -> Callable:
  """Lifts a two-view loss to (batch, n_views, dim) in EMP-SSL's form: each
  view is paired with the mean of the image's views; mean over views."""

  def loss_fn(z, **kwargs):
    mean = jnp.mean(z, axis=1)
    return _average([pair_loss(z[:, v], mean, **kwargs)
                     for v in range(z.shape[1])])

  return loss_fn


def byol_views(p, z_target, multi_view="pairs", scale=2.0):
  """BYOL over views: online predictions p and target projections z_target,
  both (batch, n_views, dim). The loss is `scale` x the mean of byol_loss
  over every ordered pair of distinct views ("pairs") or over views, each
  view's prediction against the mean target projection ("mean"). Gradients
  are stopped on the target here.

  scale 2 is BYOL's two-view loss, the sum of both directions
  byol_loss(p1, z2) + byol_loss(p2, z1) (deepmind-research
  byol_experiment.py), and for N views the mean over unordered pairs of it,
  as for the other methods; solo-learn's multi-crop BYOL sums over all
  N(N-1) ordered pairs (scale N(N-1)). The scale matters under LARS: the 1-D
  parameters (BatchNorm, biases), outside the trust ratio, step by
  lr x gradient, and it weighs the loss against weight decay."""
  z_target = jax.lax.stop_gradient(z_target)
  n = p.shape[1]
  if multi_view == "mean":
    mean = jnp.mean(z_target, axis=1)
    loss, metrics = _average([byol_loss(p[:, v], mean) for v in range(n)])
  else:
    loss, metrics = _average([byol_loss(p[:, i], z_target[:, j])
                              for i in range(n) for j in range(n) if i != j])
  return scale * loss, {"byol": scale * metrics["byol"]}


_PAIR_LOSSES = {
    "vicreg": vicreg_loss,
    "simclr": simclr_loss,
    "spectral": spectral_contrastive_loss,
    "barlow_twins": barlow_twins_loss,
}
MULTI_VIEW = {"pairs": all_pairs, "mean": to_mean}


def loss_keywords(method: str) -> set:
  """The keyword arguments `config.loss.<method>` may set."""
  if method in dino.LOSS_KEYWORDS:
    return set(dino.LOSS_KEYWORDS[method])
  fn = {**_PAIR_LOSSES, "tcr": tcr_loss, "byol": byol_views}.get(method)
  if fn is None:
    return set()
  return set(inspect.signature(fn).parameters) - {"z", "z1", "z2", "p",
                                                  "z_target", "multi_view"}
# Methods of the ResNet + projector path. BYOL's loss needs the predictor
# and the EMA target, so the train step calls `byol_views` for it.
METHODS = (*_PAIR_LOSSES, "tcr", "byol")
# DINO and SelfPatch (ViT backbones, multi-crop, EMA teacher): dino.py.
VIT_METHODS = ("dino", "selfpatch")
ALL_METHODS = METHODS + VIT_METHODS  # what `config.method` may be


def method_loss(method: str, z, multi_view: str = "pairs", **kwargs):
  """The loss of `config.method` on projector outputs z (batch, views, dim).

  TCR uses EMP-SSL's view-to-mean invariance whatever `multi_view` says."""
  if method == "tcr":
    return tcr_loss(z, **kwargs)
  if method not in _PAIR_LOSSES:
    raise ValueError(f"method_loss: no projector-only loss for '{method}'")
  return MULTI_VIEW[multi_view](_PAIR_LOSSES[method])(z, **kwargs)
