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
  """images (B, H, W, C), positions (B, N, 2) -> patches (B, N, p, p, C)."""
  offsets = np.arange(patch_size)
  rows = positions[..., 0, None] + offsets  # (B, N, p)
  cols = positions[..., 1, None] + offsets
  b = np.arange(images.shape[0])[:, None, None, None]
  return images[b, rows[..., :, None], cols[..., None, :]]
