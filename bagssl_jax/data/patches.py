"""Fixed-scale patch extraction (host side, vectorised NumPy).

Patch positions are a counter-based hash of (seed, stream index, patch j), so
the patches of an example do not depend on batch size, process count or
worker count: every topology trains on the same patches.
"""
from __future__ import annotations

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(x):
  x = x.astype(np.uint64)
  x = (x ^ (x >> np.uint64(30))) * _M1
  x = (x ^ (x >> np.uint64(27))) * _M2
  return x ^ (x >> np.uint64(31))


def random_positions(seed, stream_index, num_patches, image_hw, patch_size):
  """(B, num_patches, 2) top-left corners, uniform over valid positions."""
  h, w = image_hw
  if num_patches == 0:
    return np.zeros((len(stream_index), 0, 2), np.int32)
  if patch_size > min(h, w):
    raise ValueError(f"patch_size {patch_size} larger than the image {h}x{w}")
  with np.errstate(over="ignore"):
    base = _splitmix64(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                       + np.asarray(stream_index, np.uint64))
    j = np.arange(2 * num_patches, dtype=np.uint64)
    r = _splitmix64(base[:, None] + (j[None] + np.uint64(1)) * _M2)
  r = r.reshape(-1, num_patches, 2)
  limits = np.array([h - patch_size + 1, w - patch_size + 1], np.uint64)
  return (r % limits).astype(np.int32)


def grid_positions(image_hw, patch_size, stride):
  """(G, 2) corners of all patches on a `stride` grid (the paper's "All").

  The last row/column of positions is always included, so the patches cover
  the whole image whatever the stride.
  """
  h, w = image_hw
  ys = np.unique(np.append(np.arange(0, h - patch_size + 1, stride),
                           h - patch_size))
  xs = np.unique(np.append(np.arange(0, w - patch_size + 1, stride),
                           w - patch_size))
  return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def extract_patches(images, positions, patch_size):
  """images (B, H, W, C), positions (B, N, 2) -> patches (B, N, p, p, C).

  One gather of whole windows from a strided view (no per-pixel index
  arrays), then a transpose to channels-last."""
  windows = np.lib.stride_tricks.sliding_window_view(
      images, (patch_size, patch_size), axis=(1, 2))  # (B, H', W', C, p, p)
  b = np.arange(images.shape[0])[:, None]
  out = windows[b, positions[..., 0], positions[..., 1]]  # (B, N, C, p, p)
  return np.ascontiguousarray(out.transpose(0, 1, 3, 4, 2))


def _uniforms(seed, stream_index, count, salt):
  """(B, count) floats in [0, 1) hashed from (seed, stream index, salt)."""
  with np.errstate(over="ignore"):
    base = _splitmix64(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                       + np.asarray(stream_index, np.uint64)
                       + np.uint64(salt) * np.uint64(0xD1B54A32D192ED03))
    j = np.arange(count, dtype=np.uint64)
    r = _splitmix64(base[:, None] + (j[None] + np.uint64(1)) * _M1)
  return (r >> np.uint64(11)).astype(np.float64) * 2.0**-53


def random_resized_crops(seed, stream_index, num_crops, image_hw,
                         scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries=10,
                         salt=1):
  """(B, num_crops, 4) float32 boxes (top, left, height, width) drawn as
  torchvision's RandomResizedCrop: area fraction in `scale`, log-uniform
  aspect ratio in `ratio`, first of `tries` draws that fits, else the
  largest centred box with a clipped ratio. A different `salt` draws an
  independent set (multi-crop's global and local crops)."""
  h, w = image_hw
  b = len(stream_index)
  u = _uniforms(seed, stream_index, num_crops * tries * 4, salt=salt).reshape(
      b, num_crops, tries, 4)
  area = h * w * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
  log_r = np.log(ratio[0]) + (np.log(ratio[1]) - np.log(ratio[0])) * u[..., 1]
  cw = np.round(np.sqrt(area * np.exp(log_r)))
  ch = np.round(np.sqrt(area / np.exp(log_r)))
  fits = (cw > 0) & (ch > 0) & (cw <= w) & (ch <= h)
  top = np.floor(u[..., 2] * (h - ch + 1))
  left = np.floor(u[..., 3] * (w - cw + 1))
  # Fallback: centre crop with the ratio clipped into range.
  in_ratio = w / h
  if in_ratio < ratio[0]:
    fw, fh = w, round(w / ratio[0])
  elif in_ratio > ratio[1]:
    fh, fw = h, round(h * ratio[1])
  else:
    fw, fh = w, h
  fallback = np.array([(h - fh) // 2, (w - fw) // 2, fh, fw], np.float64)
  first = np.argmax(fits, axis=-1)[..., None]  # (B, N, 1)
  take = lambda a: np.take_along_axis(a, first, axis=-1)[..., 0]
  boxes = np.stack([take(top), take(left), take(ch), take(cw)], -1)
  any_fit = fits.any(axis=-1)[..., None]
  return np.where(any_fit, boxes, fallback).astype(np.float32)
