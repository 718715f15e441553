"""DINO and SelfPatch: pure losses, the loss function, the two methods.

DINO (Caron et al. 2021): a student sees every crop (2 global + L local), an
EMA teacher the global crops; the teacher's outputs are centred (EMA centre)
and sharpened (temperature warmed up from `warmup_teacher_temp` to
`teacher_temp`), and the loss is the cross-entropy between the teacher's and
the student's distributions over pairs of different crops.

SelfPatch (Yun et al. 2022) adds a patch-level term: for each teacher patch
token, its 8 neighbours on the token grid; the top-k by cosine similarity
are positives, summarised by the aggregation module (`vit.Aggregator`); the
student's token at the same position, in the same crop, is trained with the
DINO cross-entropy against that summary (own centre, same temperatures).
Total: DINO + patch_weight x patch term.

Border handling: neighbours outside the grid are dropped (edges have 5,
corners 3), never wrapped around; a corner with k=4 aggregates its 3 real
neighbours (the 4th slot is masked out of the attention). (SelfPatch's
reference code wraps around the grid instead.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bagssl_jax.data import multicrop
from bagssl_jax.methods import base
from bagssl_jax.models import vit

def _cross_entropy(teacher_logits, student_logits, center, teacher_temp,
                   student_temp):
  """(..., K) teacher and student logits -> (...) H(teacher, student)."""
  q = jax.nn.softmax((jax.lax.stop_gradient(teacher_logits) - center)
                     / teacher_temp, axis=-1)
  q = jax.lax.stop_gradient(q)
  return -jnp.sum(q * jax.nn.log_softmax(student_logits / student_temp, -1),
                  axis=-1), q


def _entropy(q):
  return -jnp.mean(jnp.sum(q * jnp.log(q + 1e-12), axis=-1))


def dino_loss(student_logits, teacher_logits, center, teacher_temp,
              student_temp=0.1):
  """student_logits (V, B, K) over all crops, the first G global;
  teacher_logits (G, B, K) of the global crops. Mean over the pairs
  (teacher crop g, student crop v != g) and the batch of H(teacher, student).
  The teacher side gets no gradient."""
  g, v = teacher_logits.shape[0], student_logits.shape[0]
  ce, q = _cross_entropy(teacher_logits[:, None], student_logits[None],
                         center, teacher_temp, student_temp)  # (G, V, B)
  pairs = jnp.asarray(~np.eye(g, v, dtype=bool), ce.dtype)
  loss = jnp.sum(ce.mean(-1) * pairs) / jnp.sum(pairs)
  return loss, {"dino": loss, "teacher_entropy": _entropy(q[:, 0])}


def patch_loss(student_logits, teacher_logits, center, teacher_temp,
               student_temp=0.1):
  """SelfPatch's patch term: (G, B, N, P) student logits of each patch token
  and teacher logits of its aggregated neighbours, same crop and position;
  mean of H(teacher, student) over tokens."""
  ce, q = _cross_entropy(teacher_logits, student_logits, center, teacher_temp,
                         student_temp)
  loss = ce.mean()
  return loss, {"patch": loss, "patch_teacher_entropy": _entropy(q)}


def update_center(center, teacher_logits, momentum):
  """EMA of the teacher logits' mean over every axis but the last."""
  mean = jax.lax.stop_gradient(teacher_logits).reshape(
      -1, teacher_logits.shape[-1]).mean(0)
  return momentum * center + (1. - momentum) * mean


def teacher_temperature(step, warmup_steps, start, end):
  """Linear from `start` to `end` over `warmup_steps`, then `end`."""
  frac = jnp.minimum(step / max(warmup_steps, 1), 1.)
  return start + (end - start) * frac


def make_loss_fn(method, model, config, steps_per_epoch=1):
  """Pure DINO / SelfPatch loss of a multi-crop batch.

  loss_fn(params, state, rng, batch) -> (loss, (metrics, batch_stats,
  target updates {"center"[, "patch_center"]})); the teacher is
  state.target["params"] and gets no gradient."""
  kw = dict(config.loss[method.name])
  mc = config.multicrop
  selfpatch = method.patch_head
  grid = mc.global_size // config.model.vit_patch
  neighbours, valid = vit.neighbour_indices(grid, grid)
  k = kw.get("num_neighbours", 4)
  student_temp = kw.get("student_temp", 0.1)
  momentum = kw.get("center_momentum", 0.9)
  warmup = int(kw.get("warmup_teacher_temp_epochs", 0) * steps_per_epoch)

  def loss_fn(params, state, rng, batch):
    xg, xl = multicrop.multicrop_views(rng, batch, config)
    b = batch["label"].shape[0]
    crops = (xg,) if xl is None else (xg, xl)
    logits, s_patch = model.apply({"params": params}, crops, method="student")
    t_logits, t_patch = model.apply({"params": state.target["params"]}, xg,
                                    neighbours, valid, k, method="teacher")
    t_logits = jax.lax.stop_gradient(t_logits)
    temp = teacher_temperature(state.step, warmup,
                               kw.get("warmup_teacher_temp", 0.04),
                               kw.get("teacher_temp", 0.04))
    s = jnp.concatenate([l.reshape(-1, b, l.shape[-1]) for l in logits])
    t = t_logits.reshape(-1, b, t_logits.shape[-1])
    loss, metrics = dino_loss(s, t, state.target["center"], temp, student_temp)
    updates = {"center": update_center(state.target["center"], t, momentum)}
    if selfpatch:
      t_patch = jax.lax.stop_gradient(t_patch)
      p_loss, p_metrics = patch_loss(s_patch, t_patch,
                                     state.target["patch_center"], temp,
                                     student_temp)
      loss = loss + kw.get("patch_weight", 0.1) * p_loss
      metrics.update(p_metrics)
      updates["patch_center"] = update_center(state.target["patch_center"],
                                              t_patch, momentum)
    metrics["teacher_temp"] = temp
    return loss, (metrics, state.batch_stats, updates)

  return loss_fn


def init_teacher(params, variables, config):
  """The teacher at init: the student's parameters and zero output centres."""
  del variables
  target = {"params": params, "center": jnp.zeros((config.model.out_dim,))}
  if "patch_head" in params:  # SelfPatch
    target["patch_center"] = jnp.zeros((config.model.patch_out_dim,))
  return target


def _check_selfpatch(config):
  k = config.loss[config.method].get("num_neighbours", 4)
  if not 1 <= k <= 8:
    raise ValueError(f"config.loss.{config.method}.num_neighbours must be in "
                     f"1..8, got {k}")


_DINO_LOSS = dict(student_temp=0.1, teacher_temp=0.04, warmup_teacher_temp=0.04,
                  warmup_teacher_temp_epochs=0, center_momentum=0.9)
_SELFPATCH_LOSS = dict(_DINO_LOSS, num_neighbours=4, patch_weight=0.1)

# ImageNet: ViT-S/16, the DINO / SelfPatch ViT-S recipe (facebookresearch/dino
# README and main_dino.py defaults; alinlab/SelfPatch main_selfpatch.py and
# README: 2 global crops (0.25-1) at 224, local crops (0.05-0.25) at 96,
# AdamW lr 5e-4 per 256, wd 0.04, 10 warmup epochs, teacher momentum 0.996,
# teacher temperature 0.04 -> 0.07 over 30 epochs, out_dim 65536, SelfPatch
# k = 4 neighbours, patch weight 0.1, 2 class-attention blocks). The DINO
# weight-decay schedule (0.04 -> 0.4), gradient clipping and the frozen last
# layer of the first epoch are not implemented (fixed wd 0.04 here).
# Fashion-MNIST: this repository's choice, sized for 15 minutes on 2 CPU
# cores (docs/tuning.md): a 4-block ViT of width 64 on 7x7 patches (4x4
# tokens a 28-px image: 2.9x the images/s of 4x4 patches, so 3x the steps).
_VIT_TEMPS = dict(teacher_temp=0.07, warmup_teacher_temp=0.04,
                  warmup_teacher_temp_epochs=30)
_VIT_OPTIMIZER = dict(name="adamw", base_lr=5e-4, weight_decay=0.04,
                      warmup_epochs=10, end_lr_factor=2e-3)


def _vit_presets(loss):
  return {
      "fashion_mnist": dict(
          loss=loss, tau=0.99,
          config=dict(crop="multicrop", patch_size=14, input_size=14,
                      batch_size=128, num_epochs=5,  # 2,340 steps
                      checkpoint_every_steps=500),
          optimizer=dict(_VIT_OPTIMIZER, base_lr=2e-3, warmup_epochs=0.2),
          model=dict(name="vit_tiny", vit_patch=7, vit_dim=64, vit_depth=4,
                     vit_heads=4, head_hidden=256, head_bottleneck=64,
                     out_dim=1024, patch_out_dim=256, agg_depth=2),
          multicrop=dict(num_global=2, num_local=4, global_size=28,
                         local_size=14, global_scale=(0.4, 1.0),
                         local_scale=(0.05, 0.4)),
          # Eval: 14x14 BagSSL patches (2x2 tokens, like the local crops),
          # a stride-7 grid (9 patches) for all_patches.
          eval=dict(protocols=("central", "all_patches"),
                    all_patches_stride=7, batch_patches=2048,
                    max_train_images=20000, knn_extra_k=(200,),
                    low_shot=(0.01, 0.1),
                    probe_learning_rates=(1e-2, 3e-2, 1e-1),
                    probe_weight_decays=(0.0, 1e-4)),
          runlocal=dict(eval=dict(protocols=("central", "16_patches",
                                             "all_patches")))),
      "imagenet": dict(
          loss=dict(loss, **_VIT_TEMPS), tau=0.996,
          # BagSSL eval patches of 96 px (6x6 tokens, like the local crops).
          config=dict(crop="multicrop", patch_size=96, input_size=96,
                      batch_size=1024, num_epochs=100),
          optimizer=_VIT_OPTIMIZER,
          model=dict(name="vit_small", vit_patch=16, head_hidden=2048,
                     head_bottleneck=256, out_dim=65536, patch_out_dim=4096,
                     agg_depth=2),
          multicrop=dict(num_global=2, num_local=10, global_size=224,
                         local_size=96, global_scale=(0.25, 1.0),
                         local_scale=(0.05, 0.25)),
          eval=dict(protocols=("central", "16_patches", "all_patches"),
                    all_patches_stride=64, batch_patches=2048),
          # Tiny mock images: 32-px global, 16-px local crops.
          runlocal=dict(
              config=dict(patch_size=16, input_size=16),
              data=dict(image_size=32),
              multicrop=dict(global_size=32, local_size=16),
              eval=dict(protocols=("central", "16_patches", "all_patches"),
                        all_patches_stride=16))),
      }


DINO = base.Method(
    name="dino", loss=None, loss_defaults=_DINO_LOSS, backbone="vit",
    target=True, make_loss_fn=make_loss_fn, init_target=init_teacher,
    presets=_vit_presets(_DINO_LOSS))
SELFPATCH = base.Method(
    name="selfpatch", loss=None, loss_defaults=_SELFPATCH_LOSS, backbone="vit",
    target=True, make_loss_fn=make_loss_fn, init_target=init_teacher,
    check=_check_selfpatch, patch_head=True,
    presets=_vit_presets(_SELFPATCH_LOSS))
METHODS = (DINO, SELFPATCH)
