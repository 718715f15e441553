"""DINO's multi-crop views on the device, from the host pipeline's boxes."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.data import augment


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
