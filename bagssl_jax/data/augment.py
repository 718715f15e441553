"""On-device patch augmentation and normalisation (jit-able, pure jnp).

Patches arrive as uint8 from the host; here they are resized to the model's
input size, flipped and colour-jittered (brightness, contrast, saturation,
hue, grayscale; single-channel images use flip, brightness and contrast),
optionally blurred and solarized with per-view probabilities (photometric.py:
the baselines' BYOL / VICReg recipe), and normalised. Randomness comes from a
key folded with the step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from bagssl_jax.data import photometric


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


def color_augment(rng, x, cfg, num_views=1):
  """Random flip + colour jitter + grayscale (+ blur, solarization) on
  patches x (P, h, w, C) in [0,1]; image i is view i % num_views (for the
  per-view probabilities). `cfg.random_order`: the jitter ops in a random
  order per image (torchvision's ColorJitter), else brightness, contrast,
  saturation, hue."""
  p = x.shape[0]
  keys = jax.random.split(rng, 8)
  if cfg.flip:
    flip = jax.random.bernoulli(keys[0], 0.5, (p, 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x)
  b, c, s = cfg.brightness, cfg.contrast, cfg.saturation
  f_b = _per_patch(keys[1], (p,), 1 - b, 1 + b)
  f_c = _per_patch(keys[2], (p,), 1 - c, 1 + c)
  f_s = _per_patch(keys[3], (p,), 1 - s, 1 + s)
  shift = _per_patch(keys[4], (p,), -cfg.hue, cfg.hue)[..., 0]

  def brightness(out):
    return out * f_b  # clipped by contrast in the fixed order (as before)

  def contrast(out):
    mean = _gray(out).mean(axis=(1, 2, 3), keepdims=True)
    return jnp.clip((out - mean) * f_c + mean, 0., 1.)

  def saturation(out):
    if out.shape[-1] != 3:
      return out
    gray = _gray(out)
    return jnp.clip(gray + (out - gray) * f_s, 0., 1.)

  def hue(out):
    if out.shape[-1] != 3:
      return out
    hsv = _rgb_to_hsv(out)
    hsv = hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.)
    return _hsv_to_rgb(hsv)

  if cfg.get("random_order", False):
    ops = (lambda o: jnp.clip(brightness(o), 0., 1.), contrast, saturation,
           hue)
    order = photometric.jitter_order(jax.random.fold_in(keys[7], 0), p)
    out = photometric.apply_in_order(x, ops, order)
  else:
    out = hue(saturation(contrast(brightness(x))))
  jitter = jax.random.bernoulli(keys[5], cfg.jitter_prob, (p, 1, 1, 1))
  x = jnp.where(jitter, out, x)
  if x.shape[-1] == 3 and cfg.grayscale_prob > 0:
    to_gray = jax.random.bernoulli(keys[6], cfg.grayscale_prob, (p, 1, 1, 1))
    x = jnp.where(to_gray, jnp.broadcast_to(_gray(x), x.shape), x)
  return photometric.blur_and_solarize(jax.random.fold_in(keys[7], 1), x, cfg,
                                       num_views)


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
  num_views = x.shape[1]
  x = x.reshape((-1,) + x.shape[2:])
  x = color_augment(rng, x, config.augment, num_views)
  return normalize(x, config.data.mean, config.data.std)
