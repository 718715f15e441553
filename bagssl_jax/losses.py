"""Joint-embedding SSL losses as pure functions of projector outputs.

Every method loss takes `z` of shape (batch, n_views, dim) — the n_views
patches of one image are positives of each other — and returns
`(loss, metrics)`. `METHODS` maps `config.method` to such a function.
"""
from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp


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


def all_pairs(pair_loss: Callable) -> Callable:
  """Lifts a two-view loss to (batch, n_views, dim): mean over view pairs i<j."""

  def loss_fn(z, **kwargs):
    pairs = list(itertools.combinations(range(z.shape[1]), 2))
    if not pairs:
      raise ValueError("a joint-embedding loss needs at least 2 views")
    results = [pair_loss(z[:, i], z[:, j], **kwargs) for i, j in pairs]
    loss = sum(r[0] for r in results) / len(pairs)
    metrics = jax.tree.map(lambda *m: sum(m) / len(pairs),
                           *[r[1] for r in results])
    return loss, metrics

  return loss_fn


METHODS: dict[str, Callable] = {
    "vicreg": all_pairs(vicreg_loss),
}


def method_loss(method: str, z, **kwargs):
  """The loss of `config.method` on projector outputs z (batch, views, dim)."""
  return METHODS[method](z, **kwargs)
