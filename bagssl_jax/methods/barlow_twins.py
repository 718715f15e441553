"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny, ICML 2021)."""
from __future__ import annotations

import jax.numpy as jnp

from bagssl_jax.methods import base


def barlow_twins_loss(z1, z2, lambd=5e-3):
  """Cross-correlation of batch-standardised embeddings, (1 - c_ii)^2 on the
  diagonal and lambd * c_ij^2 off it."""
  n = z1.shape[0]
  standardise = lambda z: (z - z.mean(0)) / jnp.sqrt(z.var(0) + 1e-5)
  c = standardise(z1).T @ base.split_columns(standardise(z2)) / n
  on_diag = jnp.sum((1. - jnp.diagonal(c))**2)
  off_diag = base.off_diagonal_sq_sum(c)
  return on_diag + lambd * off_diag, {"on_diagonal": on_diag,
                                      "off_diagonal": off_diag}


METHOD = base.Method(
    name="barlow_twins",
    loss=base.over_views(barlow_twins_loss),
    loss_defaults=dict(lambd=0.0051),
    presets={
        "fashion_mnist": dict(loss=dict(lambd=0.0051)),
        "cifar": dict(
            loss=dict(lambd=0.0051),
            model=dict(projector_dims=(2048, 2048, 2048)),
            optimizer=dict(name="lars", base_lr=0.3, weight_decay=1e-4,
                           warmup_epochs=10),
            src="solo-learn scripts/pretrain/cifar/barlow.yaml (lamb 0.0051 "
                "is solo-learn's default, as in facebookresearch/barlowtwins)"),
    })
