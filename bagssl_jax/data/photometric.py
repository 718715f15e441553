"""The baselines' photometric augmentations, on the device (pure jnp).

What BYOL (Grill et al. 2020, Table 6), VICReg (Bardes et al. 2022,
Appendix C) and Barlow Twins add to flip, colour jitter and grayscale:
colour jitter in a random order per image (torchvision's ColorJitter draws a
permutation of brightness, contrast, saturation and hue on every call),
Gaussian blur with sigma ~ U(0.1, 2.0) and a kernel of ~10% of the image side
(23 px at 224), and solarization (pixels >= 0.5 inverted), each with a
probability that may differ between the two views (BYOL: blur 1.0 / 0.1,
solarize 0.0 / 0.2). Images are float (P, h, w, C) in [0, 1].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def view_probs(probs, num_images, num_views):
  """(P,) probability of each image from per-view `probs`: image i is view
  i % num_views, which takes probs[view % len(probs)]."""
  probs = jnp.asarray(tuple(probs) or (0.0,), jnp.float32)
  view = jnp.arange(num_images) % max(num_views, 1)
  return probs[view % probs.shape[0]]


def bernoulli_per_image(key, probs, num_images, num_views):
  p = view_probs(probs, num_images, num_views)
  return (jax.random.uniform(key, (num_images,)) < p)[:, None, None, None]


def jitter_order(key, num_images):
  """(P, 4) int: a random permutation of the 4 jitter ops per image."""
  keys = jax.random.split(key, num_images)
  return jax.vmap(lambda k: jax.random.permutation(k, len(JITTER_OPS)))(keys)


def apply_in_order(x, ops, order):
  """Applies the 4 functions `ops` (each (P, h, w, C) -> same) to x in the
  per-image `order` (P, 4): at stage s image i gets ops[order[i, s]]. Every
  op runs at every stage and the one each image needs is selected (vmapped
  switches become selects anyway)."""
  for s in range(order.shape[1]):
    outs = jnp.stack([op(x) for op in ops])  # (4, P, h, w, C)
    pick = jax.nn.one_hot(order[:, s], len(ops), dtype=x.dtype)  # (P, 4)
    x = jnp.einsum("kp...,pk->p...", outs, pick)
  return x


def kernel_size(side, frac=0.1):
  """Odd blur kernel side: ~`frac` of the image side (BYOL: 23 at 224)."""
  return max(3, int(side * frac) // 2 * 2 + 1)


def gaussian_blur(x, sigma, size):
  """Separable Gaussian blur of x (P, h, w, C) with per-image `sigma` (P,),
  a `size`-tap normalised kernel and reflect padding (torchvision's)."""
  r = jnp.arange(size, dtype=jnp.float32) - size // 2
  w = jnp.exp(-r[None] ** 2 / (2. * sigma[:, None] ** 2))
  w = w / w.sum(-1, keepdims=True)  # (P, size), sums to 1
  pad = size // 2

  def along(x, axis):
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad, pad)
    xp = jnp.pad(x, widths, mode="reflect" if x.shape[axis] > pad
                 else "edge")
    n = x.shape[axis]
    out = jnp.zeros_like(x)
    for k in range(size):
      win = jax.lax.slice_in_dim(xp, k, k + n, axis=axis)
      out = out + win * w[:, k, None, None, None]
    return out

  return along(along(x, 1), 2)


def solarize(x, threshold=0.5):
  """Pixels >= threshold become 1 - x (PIL / torchvision solarize)."""
  return jnp.where(x >= threshold, 1. - x, x)


def blur_and_solarize(key, x, cfg, num_views):
  """Gaussian blur then solarization, each with its per-view probability
  (cfg.blur_prob, cfg.solarize_prob); no-ops when both are 0."""
  blur_p = tuple(cfg.get("blur_prob", ()) or ())
  sol_p = tuple(cfg.get("solarize_prob", ()) or ())
  p = x.shape[0]
  k_blur, k_sigma, k_sol = jax.random.split(key, 3)
  if any(v > 0 for v in blur_p):
    lo, hi = tuple(cfg.get("blur_sigma", (0.1, 2.0)))
    sigma = jax.random.uniform(k_sigma, (p,), minval=lo, maxval=hi)
    size = kernel_size(x.shape[1], cfg.get("blur_kernel_frac", 0.1))
    x = jnp.where(bernoulli_per_image(k_blur, blur_p, p, num_views),
                  gaussian_blur(x, sigma, size), x)
  if any(v > 0 for v in sol_p):
    x = jnp.where(bernoulli_per_image(k_sol, sol_p, p, num_views),
                  solarize(x), x)
  return x
