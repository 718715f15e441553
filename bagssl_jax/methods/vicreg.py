"""VICReg (Bardes, Ponce, LeCun, ICLR 2022): variance, invariance, covariance."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.methods import base


def vicreg_loss(z1, z2, sim_coeff=25., std_coeff=25., cov_coeff=1., eps=1e-4):
  """VICReg with the official normalisation.

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
  cov1 = z1.T @ base.split_columns(z1) / (n - 1)  # column blocks per device
  cov2 = z2.T @ base.split_columns(z2) / (n - 1)
  cov_loss = (base.off_diagonal_sq_sum(cov1) +
              base.off_diagonal_sq_sum(cov2)) / d
  loss = sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
  return loss, {"invariance": repr_loss, "variance": std_loss,
                "covariance": cov_loss}


_COEFFS = dict(sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0)

METHOD = base.Method(
    name="vicreg",
    loss=base.over_views(vicreg_loss),
    loss_defaults=_COEFFS,
    extra_keywords=("eps",),
    presets={
        "fashion_mnist": dict(loss=_COEFFS),
        "cifar": dict(
            loss=_COEFFS, model=dict(projector_dims=(2048, 2048, 2048)),
            optimizer=dict(name="lars", base_lr=0.3, weight_decay=1e-4,
                           warmup_epochs=10),
            src="solo-learn scripts/pretrain/cifar/vicreg.yaml"),
        "imagenet": dict(
            loss=_COEFFS, model=dict(projector_dims=(8192, 8192, 8192)),
            optimizer=dict(name="lars", base_lr=0.2, weight_decay=1e-6,
                           warmup_epochs=10, end_lr_factor=0.001),
            src="facebookresearch/vicreg main_vicreg.py defaults"),
    })
