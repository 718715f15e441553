"""SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020): NT-Xent."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.methods import base


def simclr_loss(z1, z2, temperature=0.1):
  """NT-Xent over the 2n views: cosine similarity / temperature, each view's
  other view the positive, the 2n-2 others negatives, mean over 2n anchors."""
  n = z1.shape[0]
  z = base.l2_normalize(jnp.concatenate([z1, z2], axis=0))
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positives = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(log_probs[jnp.arange(2 * n), positives])
  return loss, {"nt_xent": loss,
                "positive_cos": jnp.mean(jnp.sum(z[:n] * z[n:], axis=1))}


# SimCLR head: one hidden layer as wide as the backbone output, then 128.
METHOD = base.Method(
    name="simclr",
    loss=base.over_views(simclr_loss),
    loss_defaults=dict(temperature=0.1),
    presets={
        "fashion_mnist": dict(loss=dict(temperature=0.2)),
        "cifar": dict(
            loss=dict(temperature=0.5), model=dict(projector_dims=(512, 128)),
            optimizer=dict(name="lars", base_lr=1.0, weight_decay=1e-6,
                           warmup_epochs=10),
            src="google-research/simclr README (CIFAR-10 command) and run.py"),
        "imagenet": dict(
            loss=dict(temperature=0.1),
            model=dict(projector_dims=(2048, 128)),
            optimizer=dict(name="lars", base_lr=0.3, weight_decay=1e-6,
                           warmup_epochs=10),
            src="google-research/simclr README (ImageNet command) and run.py"),
    })
