"""Representation health (as in the VICReg studies) and the t-SNE map.

`stats(x)`: per-dimension std and effective rank (Roy & Vetterli 2007: exp of
the entropy of the normalised singular values of the centred embeddings) of
h or z; a collapsed representation shows as std ~ 0 and a rank far below the
dimension. `HeldoutLoss` computes the training loss terms on a fixed batch of
held-out images (no update), logged during training. `tsne` maps test
features to 2-D (scikit-learn).
"""
from __future__ import annotations

import numpy as np

from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import pipeline

DEAD_STD = 1e-5


def effective_rank(x):
  x = np.asarray(x, np.float64)
  s = np.linalg.svd(x - x.mean(0), compute_uv=False)
  p = s / max(s.sum(), 1e-12)
  p = p[p > 0]
  return float(np.exp(-(p * np.log(p)).sum()))


def stats(x):
  """{"dim", "std_mean", "std_min", "std_max", "dead_dims", "effective_rank"}
  of embeddings x (n, d); `std` is the per-dimension std over the n rows."""
  x = np.asarray(x, np.float64)
  std = x.std(0)
  return {"dim": int(x.shape[1]), "std_mean": float(std.mean()),
          "std_min": float(std.min()), "std_max": float(std.max()),
          "dead_dims": int((std < DEAD_STD).sum()),
          "effective_rank": effective_rank(x)}, std


def health(patch_model, variables, config, source, num_images, data_config):
  """h and z of one random patch of each of the first `num_images` test
  images -> ({"h": stats, "z": stats, "images": n}, {"h": std, "z": std})."""
  images = first_images(source, num_images, config, data_config)
  pos = patches_lib.random_positions(config.eval.seed + 1,
                                     np.arange(len(images)), 1,
                                     images.shape[1:3], config.patch_size)
  h, z = patch_model(variables, patches_lib.extract_patches(
      images, pos, config.patch_size)[:, 0])
  (hs, h_std), (zs, z_std) = stats(h), stats(z)
  return {"h": hs, "z": zs, "images": len(images)}, {"h": h_std, "z": z_std}


def first_images(source, n, config, data_config):
  """The first n images of `source`, preprocessed as eval sees them."""
  n = min(n, len(source))
  batch = next(pipeline.eval_batches(source, n, config.data.channels,
                                     data_config.get("image_size") or 0, n))
  return batch["image"]


def tsne(features, seed=0):
  """(n, d) -> (n, 2) t-SNE map (scikit-learn, PCA init)."""
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  x = np.asarray(features, np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-6)
  return TSNE(n_components=2, init="pca", random_state=seed,
              perplexity=min(30., max(2., (len(x) - 1) / 3.))).fit_transform(x)
