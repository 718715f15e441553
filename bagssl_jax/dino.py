"""DINO and SelfPatch: multi-crop views, pure losses, the loss function.

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

from bagssl_jax import augment

# Keyword arguments `config.loss.<method>` may set, per method.
LOSS_KEYWORDS = {
    "dino": {"student_temp", "teacher_temp", "warmup_teacher_temp",
             "warmup_teacher_temp_epochs", "center_momentum"},
}
LOSS_KEYWORDS["selfpatch"] = LOSS_KEYWORDS["dino"] | {"num_neighbours",
                                                      "patch_weight"}
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0),
            (1, 1)]


def neighbour_indices(gh, gw):
  """(N, 8) row-major token indices of each token's 8 neighbours on a gh x gw
  grid and (N, 8) validity; out-of-grid slots point at the token itself and
  are invalid."""
  idx = np.zeros((gh * gw, 8), np.int32)
  valid = np.zeros((gh * gw, 8), bool)
  for i in range(gh):
    for j in range(gw):
      for s, (di, dj) in enumerate(_OFFSETS):
        y, x = i + di, j + dj
        ok = 0 <= y < gh and 0 <= x < gw
        idx[i * gw + j, s] = y * gw + x if ok else i * gw + j
        valid[i * gw + j, s] = ok
  return idx, valid


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top_k_neighbours(tokens, neighbours, valid, k):
  """tokens (B, N, D) -> the k valid neighbours most cosine-similar to each
  token (B, N, k, D), most similar first, and their validity (B, N, k)
  (False only where a token has fewer than k neighbours)."""
  nb = tokens[:, neighbours]  # (B, N, 8, D)
  sim = jnp.einsum("bnd,bnmd->bnm", _normalize(tokens), _normalize(nb))
  sim = jnp.where(valid, sim, -jnp.inf)
  _, top = jax.lax.top_k(sim, k)  # (B, N, k)
  picked = jnp.take_along_axis(nb, top[..., None], axis=2)
  picked_valid = jnp.take_along_axis(
      jnp.broadcast_to(jnp.asarray(valid), sim.shape), top, axis=2)
  return picked, picked_valid


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


def multicrop_views(rng, batch, config):
  """{"image" uint8 (B, H, W, C), "boxes" (B, G + L, 4)} -> global views
  (G*B, s, s, C) and local views (L*B, s', s', C), crop-major (all images'
  crop 0, then crop 1, ...), flipped, colour-jittered and normalised."""
  mc = config.multicrop
  images = batch["image"].astype(jnp.float32) / 255.
  g = mc.num_global
  out = []
  for i, (boxes, size) in enumerate(((batch["boxes"][:, :g], mc.global_size),
                                     (batch["boxes"][:, g:], mc.local_size))):
    if boxes.shape[1] == 0:
      out.append(None)
      continue
    x = augment.crop_and_resize(images, boxes, size)  # (B, n, s, s, C)
    x = jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])
    x = augment.color_augment(jax.random.fold_in(rng, i), x, config.augment)
    out.append(augment.normalize(x, config.data.mean, config.data.std))
  return out[0], out[1]


def make_loss_fn(model, config, steps_per_epoch=1):
  """Pure DINO / SelfPatch loss of a multi-crop batch.

  loss_fn(params, state, rng, batch) -> (loss, (metrics, batch_stats,
  target updates {"center"[, "patch_center"]})); the teacher is
  state.target["params"] and gets no gradient."""
  kw = dict(config.loss[config.method])
  mc = config.multicrop
  selfpatch = config.method == "selfpatch"
  grid = mc.global_size // config.model.vit_patch
  neighbours, valid = neighbour_indices(grid, grid)
  k = kw.get("num_neighbours", 4)
  student_temp = kw.get("student_temp", 0.1)
  momentum = kw.get("center_momentum", 0.9)
  warmup = int(kw.get("warmup_teacher_temp_epochs", 0) * steps_per_epoch)

  def loss_fn(params, state, rng, batch):
    xg, xl = multicrop_views(rng, batch, config)
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
