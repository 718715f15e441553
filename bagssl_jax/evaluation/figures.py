"""The paper's evaluation figures as PNGs (matplotlib, Agg) in WORKDIR/eval/.

  convergence.png          cos(whole-image h, mean h of N patches) vs N (Fig. 3a)
  accuracy_vs_patches.png  linear / kNN accuracy vs patches per image (Fig. 2)
  similarity_heatmap.png   one query patch vs every same-size patch of its
                           image, cosine in h and in z (Fig. 4)
  nearest_patches.png      nearest patches of query patches across test
                           images, by h and by z (Fig. 5)
  health.png               sorted per-dimension std and singular values of h, z
  tsne.png                 2-D t-SNE map of test features coloured by class

The two patch figures return their numbers too (tests check them).
"""
from __future__ import annotations

import numpy as np

from bagssl_jax import paths as paths_lib
from bagssl_jax import reporting
from bagssl_jax.evaluation import protocols
from bagssl_jax.data import patches as patches_lib


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path):
  fig.tight_layout()
  reporting.save_figure(fig, path)
  return path


def _show(ax, image, title=None):
  image = np.asarray(image)
  ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
            vmin=0, vmax=255)
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title, fontsize=8)


def convergence(conv, path):
  plt = _plt()
  keys = list(conv)
  fig, ax = plt.subplots(figsize=(4, 3))
  ax.plot(range(len(keys)), [conv[k] for k in keys], "o-")
  ax.set_xticks(range(len(keys)))
  ax.set_xticklabels(keys)
  ax.set_xlabel("patches averaged (N)")
  ax.set_ylabel("cos(h(image), mean h of N patches)")
  ax.set_title("convergence (test images)", fontsize=9)
  ax.grid(alpha=.3)
  return _save(fig, path)


def accuracy_vs_patches(results, image_hw, config, path):
  """x: network inputs averaged per image (log scale); one line per family
  (random patches, grid, crops), central and local aggregation as markers."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 3.4))
  series = {}
  for name, r in results.items():
    kind = protocols.parse(name).kind
    n = protocols.patches_per_image(name, image_hw, config)
    series.setdefault(kind, []).append((n, r, name))
  style = {"random": "o-", "grid": "s", "crops": "^--", "central": "*",
           "local": "D"}
  for kind, pts in series.items():
    pts.sort(key=lambda t: t[0])
    ns = [p[0] for p in pts]
    for metric, colour in (("linear", "C0"), ("knn", "C1")):
      ax.plot(ns, [p[1][metric] * 100 for p in pts], style[kind], color=colour,
              label=f"{kind} {metric}", alpha=.85)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("network inputs averaged per image")
  ax.set_ylabel("test accuracy (%)")
  ax.legend(fontsize=6, ncol=2)
  ax.grid(alpha=.3)
  return _save(fig, path)


def heatmap_grid(image_hw, patch_size, max_side=32):
  """All same-size patch positions at stride 1 (coarser for big images)."""
  stride = max(1, (min(image_hw) - patch_size) // (max_side - 1))
  return patches_lib.grid_positions(image_hw, patch_size, stride)


def similarity_heatmap(image, patch_model, variables, patch_size, path):
  """Fig. 4: returns {"h": (R, C) cosines, "z": ..., "query": (y, x)}."""
  pos = heatmap_grid(image.shape[:2], patch_size)
  rows, cols = len(np.unique(pos[:, 0])), len(np.unique(pos[:, 1]))
  q = int(np.argmin(np.abs(pos - np.median(pos, 0)).sum(1)))  # centre patch
  patches = patches_lib.extract_patches(image[None], pos[None], patch_size)[0]
  out = {"query": tuple(int(v) for v in pos[q])}
  for space, e in zip(("h", "z"), patch_model(variables, patches)):
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    out[space] = (e @ e[q]).reshape(rows, cols)
  plt = _plt()
  fig, axes = plt.subplots(1, 3, figsize=(9, 3))
  _show(axes[0], image, "image, query patch (red)")
  y, x = out["query"]
  axes[0].add_patch(plt.Rectangle((x - .5, y - .5), patch_size, patch_size,
                                  fill=False, color="red", lw=1.5))
  for ax, space in zip(axes[1:], ("h", "z")):
    im = ax.imshow(out[space], cmap="viridis")
    ax.set_title(f"cosine to the query in {space}", fontsize=8)
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    fig.colorbar(im, ax=ax, fraction=.046)
  _save(fig, path)
  return out


def nearest_patches(images, patch_model, variables, patch_size, stride, path,
                    num_queries=4, k=8):
  """Fig. 5: nearest grid patches (other images only) of the centre patch of
  images 0..num_queries-1, by cosine in h and in z. Returns {"h": (Q, k)
  indices of (image, position) pairs, "z": ...}."""
  grid = patches_lib.grid_positions(images.shape[1:3], patch_size, stride)
  n, g = len(images), len(grid)
  patches = patches_lib.extract_patches(
      images, np.broadcast_to(grid, (n,) + grid.shape), patch_size)
  flat = patches.reshape((n * g,) + patches.shape[2:])
  owner = np.repeat(np.arange(n), g)
  centre = int(np.argmin(np.abs(grid - np.median(grid, 0)).sum(1)))
  queries = [i * g + centre for i in range(min(num_queries, n))]
  out = {}
  for space, e in zip(("h", "z"), patch_model(variables, flat)):
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e[queries] @ e.T
    sim[owner[None, :] == owner[queries][:, None]] = -np.inf
    out[space] = np.argsort(-sim, axis=1)[:, :k]
  plt = _plt()
  fig, axes = plt.subplots(2 * len(queries), k + 1,
                           figsize=(1.1 * (k + 1), 1.2 * 2 * len(queries)))
  for qi, q in enumerate(queries):
    for si, space in enumerate(("h", "z")):
      row = axes[2 * qi + si]
      _show(row[0], flat[q], f"query {qi} ({space})")
      for j, idx in enumerate(out[space][qi]):
        _show(row[j + 1], flat[idx])
  _save(fig, path)
  return out


def health(std, path):
  """Sorted per-dimension std of h and z (log scale)."""
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(8, 3))
  for ax, space in zip(axes, ("h", "z")):
    s = np.sort(np.asarray(std[space]))[::-1]
    ax.semilogy(np.maximum(s, 1e-8))
    ax.set_title(f"per-dimension std of {space} (sorted)", fontsize=9)
    ax.set_xlabel("dimension")
    ax.grid(alpha=.3)
  return _save(fig, path)


def tsne_map(xy, labels, title, path):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 5))
  sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=3)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title, fontsize=9)
  fig.colorbar(sc, ax=ax, fraction=.046)
  return _save(fig, path)


def paths(workdir):
  return {k: paths_lib.join(workdir, "eval", k + ".png") for k in (
      "convergence", "accuracy_vs_patches", "similarity_heatmap",
      "nearest_patches", "health", "tsne")}
