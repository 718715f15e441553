"""MoCo v3 (Chen, Xie, He, ICCV 2021): an online predictor against an EMA
momentum encoder, contrasted with InfoNCE over the global batch.

The loss is symmetric: ctr(q1, k2) + ctr(q2, k1), with q the online
predictions and k the momentum encoder's projections of the other view, and
ctr(q, k) = 2 tau CE(q k^T / tau, diagonal) over l2-normalised vectors
(facebookresearch/moco-v3 moco/builder.py, main_moco.py). Its keys are the
whole global batch: the official code all-gathers k across GPUs; here the
batch is one global (sharded) array under `jax.jit`, so XLA gathers what
each device needs. The online network and the momentum encoder share
`base.target_loss_fn` with BYOL; the projector ends in a BatchNorm without
scale and bias (`model.projector_last_bn`) and the momentum follows the
cosine schedule from `target_momentum` to 1 (`--moco-m-cos`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.methods import base


def infonce(q, k, temperature=0.2):
  """MoCo v3's ctr(q, k): cross-entropy of each q against every k (its own
  image's k the positive, the rest of the batch negatives), times
  2 x temperature as in the official code."""
  q, k = base.l2_normalize(q), base.l2_normalize(k)
  logits = q @ k.T / temperature
  loss = -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=1)))
  return 2. * temperature * loss, {
      "infonce": 2. * temperature * loss,
      "positive_cos": jnp.mean(jnp.sum(q * k, axis=1))}


# mocov3_views(p, z_target, multi_view="pairs", scale=2.0, temperature=0.2):
# scale 2 x the mean over the ordered view pairs is MoCo v3's symmetrised
# loss ctr(q1, k2) + ctr(q2, k1) for two views.
mocov3_views = base.directed_pairs(infonce, "infonce")


def _check(config):
  if config.model.predictor_hidden <= 0:
    raise ValueError("config.model.predictor_hidden must be positive for "
                     f"method '{config.method}'")
  if config.loss[config.method].get("temperature", 0.2) <= 0:
    raise ValueError(f"config.loss.{config.method}.temperature must be > 0")


METHOD = base.Method(
    name="mocov3",
    loss=mocov3_views,
    loss_defaults=dict(temperature=0.2, scale=2.0),
    predictor=True,
    target=True,
    check=_check,
    presets={
        # Fashion-MNIST: this repository's choice, sized for 15 minutes of
        # the whole command on the 2-core CPU it was measured on (one that
        # runs the VICReg preset at ~950 patches/s, where its eval alone
        # takes 13 minutes): the embedded default's network, patches and
        # LARS base lr 1.6 at 2 patches x 256 images, for 3 epochs (702
        # steps, half an epoch of warm-up), the probes fit on 20,000 train
        # images with a 3-point lr sweep (weight decay 0) of 1,000 steps;
        # MoCo v3's heads at the width of the 512^3 projector
        # (projector 1024-256 ending in BatchNorm, predictor 256-1024-256),
        # temperature 0.2 (the paper's), momentum 0.97 -> 1 (the BYOL
        # preset's: a few hundred steps are too few for 0.99).
        "fashion_mnist": dict(
            loss=dict(temperature=0.2, scale=2.0), tau=0.97,
            config=dict(num_epochs=3),
            optimizer=dict(warmup_epochs=0.5),
            model=dict(projector_dims=(1024, 256), projector_last_bn=True,
                       predictor_hidden=1024),
            eval=dict(max_train_images=20000, probe_weight_decays=(0.0,),
                      probe_steps=1000)),
        # ResNet-50, 100 epochs: LARS lr 0.45 per 256 images (batch 4096),
        # wd 1e-6, 10 warm-up epochs, momentum 0.99 -> 1 (cosine),
        # projector 2048-4096-256 ending in BatchNorm, predictor 4096-256;
        # temperature 1.0, the official code's ResNet-50 default (0.2 is
        # its ViT setting and this method's default here).
        "imagenet": dict(
            loss=dict(temperature=1.0, scale=2.0), tau=0.99,
            model=dict(projector_dims=(4096, 256), projector_last_bn=True,
                       predictor_hidden=4096),
            optimizer=dict(name="lars", base_lr=0.45, weight_decay=1e-6,
                           warmup_epochs=10),
            src="facebookresearch/moco-v3 README (ResNet-50 100-epoch "
                "reference setup), main_moco.py defaults, moco/builder.py"),
    })
