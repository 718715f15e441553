"""Spectral contrastive loss (HaoChen et al., NeurIPS 2021) and BagSSL's
co-occurrence loss L_C (Proposition 3.1: L_C = 2w L_S(lam = w/2) + const)."""
from __future__ import annotations

import jax.numpy as jnp

from bagssl_jax.methods import base


def spectral_contrastive_loss(z1, z2, lam=1.0):
  """Minibatch spectral contrastive loss as in BagSSL:
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


# HaoChen et al.: SGD lr 0.03/256, wd 5e-4, 10 warmup epochs, cosine to 0,
# head 2048-1000, mu = 1. Their loss with mu = 1 is -2 E[z.z+] + E_{i!=j}
# [(z_i.z_j)^2], twice ours at lam = 1/2, hence lr 0.06 for the same step.
METHOD = base.Method(
    name="spectral",
    loss=base.over_views(spectral_contrastive_loss),
    loss_defaults=dict(lam=1.0),
    presets={
        "fashion_mnist": dict(loss=dict(lam=1.0)),
        "cifar": dict(
            loss=dict(lam=0.5), model=dict(projector_dims=(2048, 1000)),
            optimizer=dict(name="sgd", base_lr=0.06, weight_decay=5e-4,
                           warmup_epochs=10, end_lr_factor=0.0),
            src="jhaochenz96/spectral_contrastive_learning configs/"
                "spectral_resnet_mlp1000_norelu_cifar10_lr003_mu1.yaml, "
                "models/spectral.py, pretrain.py"),
    })
