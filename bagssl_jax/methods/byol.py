"""BYOL (Grill et al., NeurIPS 2020): an online predictor regresses the
projections of an EMA target network (`base.target_loss_fn`)."""
from __future__ import annotations

import jax.numpy as jnp

from bagssl_jax.methods import base


def byol_loss(p, z):
  """Mean of 2 - 2 cos(p, z); z is the target and gets no gradient where the
  caller stops it."""
  loss = jnp.mean(2. - 2. * jnp.sum(base.l2_normalize(p) *
                                    base.l2_normalize(z), -1))
  return loss, {"byol": loss}


# byol_views(p, z_target, multi_view="pairs", scale=2.0): `scale` x the mean
# of byol_loss over every ordered pair of distinct views. scale 2 is BYOL's
# two-view loss, the sum of both directions byol_loss(p1, z2) +
# byol_loss(p2, z1) (deepmind-research byol_experiment.py), and for N views
# the mean over unordered pairs of it, as for the other methods;
# solo-learn's multi-crop BYOL sums over all N(N-1) ordered pairs (scale
# N(N-1)). The scale matters under LARS: the 1-D parameters (BatchNorm,
# biases), outside the trust ratio, step by lr x gradient, and it weighs the
# loss against weight decay.
byol_views = base.directed_pairs(byol_loss, "byol")


def _check(config):
  if config.model.predictor_hidden <= 0:
    raise ValueError("config.model.predictor_hidden must be positive for "
                     f"method '{config.method}'")


METHOD = base.Method(
    name="byol",
    loss=byol_views,
    loss_defaults=dict(scale=2.0),  # 2: BYOL's symmetrised two-view loss
    predictor=True,
    target=True,
    check=_check,
    presets={
        # Fashion-MNIST (16_patches linear, docs/tuning.md): LARS lr 1.0,
        # target momentum 0.97 -> 1, BYOL-shaped heads (projector 1024-256,
        # predictor 256-1024-256): 83.3%; 4 patches x 128 images for 4
        # epochs (the same 512 patches and 1,872 steps; base lr 2.0 = 1.0 at
        # 128 images), all view pairs: 83.7%; the predictor's lr x10 (the
        # relative predictor lr of Tian et al. 2021): 84.6%; the loss at
        # BYOL's scale (scale 2): 84.9%; solo-learn's multi-crop sum over the
        # 12 ordered view pairs (scale 12): 85.8%. Under LARS the loss scale
        # is the step of the BatchNorm and bias parameters (outside the
        # trust ratio), which the mean over pairs had left ~12x too small.
        "fashion_mnist": dict(
            loss=dict(scale=12.0), tau=0.97,
            config=dict(num_patches=4, batch_size=128, num_epochs=4),
            optimizer=dict(base_lr=2.0, warmup_epochs=0.5,
                           predictor_lr_mult=10.0),
            model=dict(projector_dims=(1024, 256), predictor_hidden=1024)),
        "cifar": dict(
            loss=dict(scale=2.0), tau=0.99,
            model=dict(projector_dims=(4096, 256), predictor_hidden=4096),
            optimizer=dict(name="lars", base_lr=1.0, weight_decay=1e-5,
                           warmup_epochs=10),
            src="solo-learn scripts/pretrain/cifar/byol.yaml"),
        # The official 100-epoch preset (the BagSSL schedule here is 100
        # epochs).
        "imagenet": dict(
            loss=dict(scale=2.0), tau=0.99,
            model=dict(projector_dims=(4096, 256), predictor_hidden=4096),
            optimizer=dict(name="lars", base_lr=0.45, weight_decay=1e-6,
                           warmup_epochs=10),
            src="google-deepmind/deepmind-research byol/configs/byol.py "
                "(100-epoch presets)"),
    })
