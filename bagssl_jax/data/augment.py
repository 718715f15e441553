"""On-device patch augmentation and normalisation (jit-able, pure jnp).

Patches arrive as uint8 from the host; here they are resized to the model's
input size, flipped and colour-jittered (brightness, contrast, saturation,
hue, grayscale; single-channel images use flip, brightness and contrast), and
normalised. Randomness comes from a key folded with the step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def to_float(x, input_size=None):
  """uint8 (..., h, w, C) -> float32 in [0, 1], resized to input_size."""
  x = x.astype(jnp.float32) / 255.
  if input_size and x.shape[-2] != input_size:
    shape = x.shape[:-3] + (input_size, input_size, x.shape[-1])
    x = jax.image.resize(x, shape, "bilinear", antialias=True)
  return x


def normalize(x, mean, std):
  return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


def _gray(x):
  if x.shape[-1] == 1:
    return x
  return (x @ jnp.array([0.299, 0.587, 0.114], x.dtype))[..., None]


def _rgb_to_hsv(rgb):
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  maxc, minc = rgb.max(-1), rgb.min(-1)
  v, delta = maxc, maxc - minc
  s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.), 0.)
  safe = jnp.where(delta > 0, delta, 1.)
  rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
  h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2. + rc - bc,
                                               4. + gc - rc))
  h = jnp.where(delta > 0, (h / 6.) % 1., 0.)
  return jnp.stack([h, s, v], -1)


def _hsv_to_rgb(hsv):
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  k = (jnp.array([5., 3., 1.]) + h[..., None] * 6.) % 6.
  return v[..., None] - v[..., None] * s[..., None] * jnp.clip(
      jnp.minimum(k, 4. - k), 0., 1.)


def _per_patch(key, shape, lo, hi):
  return jax.random.uniform(key, shape + (1, 1, 1), minval=lo, maxval=hi)


def color_augment(rng, x, cfg):
  """Random flip + colour jitter + grayscale on patches x (P, h, w, C) in [0,1]."""
  p = x.shape[0]
  keys = jax.random.split(rng, 8)
  if cfg.flip:
    flip = jax.random.bernoulli(keys[0], 0.5, (p, 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x)
  out = x
  b, c = cfg.brightness, cfg.contrast
  out = out * _per_patch(keys[1], (p,), 1 - b, 1 + b)
  mean = _gray(out).mean(axis=(1, 2, 3), keepdims=True)
  out = (out - mean) * _per_patch(keys[2], (p,), 1 - c, 1 + c) + mean
  out = jnp.clip(out, 0., 1.)
  if x.shape[-1] == 3:
    s = cfg.saturation
    gray = _gray(out)
    out = jnp.clip(gray + (out - gray) * _per_patch(keys[3], (p,), 1 - s,
                                                    1 + s), 0., 1.)
    hsv = _rgb_to_hsv(out)
    shift = _per_patch(keys[4], (p,), -cfg.hue, cfg.hue)[..., 0]
    hsv = hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.)
    out = _hsv_to_rgb(hsv)
  jitter = jax.random.bernoulli(keys[5], cfg.jitter_prob, (p, 1, 1, 1))
  x = jnp.where(jitter, out, x)
  if x.shape[-1] == 3 and cfg.grayscale_prob > 0:
    to_gray = jax.random.bernoulli(keys[6], cfg.grayscale_prob, (p, 1, 1, 1))
    x = jnp.where(to_gray, jnp.broadcast_to(_gray(x), x.shape), x)
  return x


def crop_and_resize(images, boxes, size):
  """Crops boxes (B, N, 4) = (top, left, height, width) in pixels from float
  images (B, H, W, C) and resizes each to size x size (bilinear, antialiased)
  -> (B, N, size, size, C). The RandomResizedCrop baseline, on device."""

  def one(image, box):
    top, left, h, w = box[0], box[1], box[2], box[3]
    scale = jnp.stack([size / h, size / w])
    translation = -jnp.stack([top, left]) * scale
    return jax.image.scale_and_translate(
        image, (size, size, image.shape[-1]), (0, 1), scale, translation,
        "linear", antialias=True)

  return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(images, boxes)


def train_views(rng, batch, config):
  """Host batch -> augmented, normalised views (B*N, s, s, C) float.

  `batch` holds either "patches" uint8 (B, N, p, p, C) (BagSSL fixed-scale
  patches, resized to config.input_size) or "image" uint8 (B, H, W, C) with
  "boxes" (B, N, 4) (the RandomResizedCrop baseline)."""
  if "boxes" in batch:
    x = crop_and_resize(batch["image"].astype(jnp.float32) / 255.,
                        batch["boxes"], config.input_size)
  else:
    x = to_float(batch["patches"], config.input_size)
  x = x.reshape((-1,) + x.shape[2:])
  x = color_augment(rng, x, config.augment)
  return normalize(x, config.data.mean, config.data.std)
