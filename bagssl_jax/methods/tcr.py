"""Total coding rate (EMP-SSL; Tong, Chen, Ma, LeCun 2023): many patches per
image, each view against the mean of its image's views."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.methods import base


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
  z = base.l2_normalize(z)
  rate = jnp.mean(jax.vmap(lambda v: total_coding_rate(v, eps_sq),
                           in_axes=1)(z))
  mean = base.l2_normalize(jnp.mean(z, axis=1, keepdims=True))
  invariance = jnp.mean(jnp.sum(z * mean, axis=-1))
  return -rate - inv_coeff * invariance, {"coding_rate": rate,
                                          "invariance": invariance}


def tcr_views(z, multi_view="pairs", eps_sq=0.2, inv_coeff=200.0):
  """TCR uses its view-to-mean invariance whatever `multi_view` says."""
  del multi_view
  return tcr_loss(z, eps_sq, inv_coeff)


# EMP-SSL: lr 0.3 at batch 100 (0.768 per 256), SGD+LARS wrapper, wd 1e-4,
# cosine to 0 without warmup; head 4096-4096-1024; ColorJitter(.4,.4,.4,.2).
_EMP_SSL = dict(
    loss=dict(eps_sq=0.2, inv_coeff=200.0),
    model=dict(projector_dims=(4096, 4096, 1024)),
    optimizer=dict(name="lars", base_lr=0.768, weight_decay=1e-4,
                   warmup_epochs=0, end_lr_factor=0.0),
    augment=dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2))

METHOD = base.Method(
    name="tcr",
    loss=tcr_views,
    loss_defaults=dict(eps_sq=0.2, inv_coeff=200.),
    presets={
        # EMP-SSL needs many views: 16 patches of 32 images a step (the same
        # 512 patches a step as the others; 1 epoch = 1,875 steps, the
        # others' 8 epochs of 2 patches = 1,872), half of it lr warm-up; base
        # lr 3.2 per 256 images = 0.4 at 32 images. More views per image win
        # (docs/tuning.md: 2 x 256 64.8%, 4 x 128 83.3%, 8 x 64 84.5%,
        # 16 x 32 85.2%).
        "fashion_mnist": dict(
            loss=dict(eps_sq=0.2, inv_coeff=200.0),
            config=dict(num_patches=16, batch_size=32, num_epochs=1),
            optimizer=dict(base_lr=3.2, warmup_epochs=0.5)),
        "cifar": dict(_EMP_SSL, src="tsb0601/EMP-SSL main.py, model/model.py, "
                      "dataset/aug.py"),
        "imagenet": dict(_EMP_SSL, src="tsb0601/EMP-SSL main.py, README "
                         "(ImageNet-100 command), dataset/aug4img.py"),
    })
