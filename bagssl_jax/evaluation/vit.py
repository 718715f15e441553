"""Eval of a ViT (DINO / SelfPatch): the BagSSL protocols for both image
representations, plus a patch-level probe.

- `<protocol>:<representation>` for every `config.eval` protocol (`central`,
  `<k>_patches`, `all_patches`) and representation (`vit.REPRESENTATIONS`):
  `cls` (the image-level token: [CLS] for DINO, the aggregator's token for
  SelfPatch), `mean_patch` (mean patch token), `cls_blocks` (DINO's linear
  eval features: [CLS] of the last 4 blocks + mean patch token), averaged
  over the protocol's patches. One forward pass serves all
  (`ViTSSLModel.embed` with representation "all").
- `patch_tokens`: what SelfPatch is for. Individual patch tokens of whole
  images (7x7 per Fashion-MNIST image) labelled with their image's label:
  `eval.patch_probe_tokens` random tokens per image of the first
  `eval.patch_probe_train_images` train and `eval.patch_probe_test_images`
  test images; linear probe and kNN as for images.

Results go to WORKDIR/eval/results.json ({name: {"linear", "knn"}}).
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from bagssl_jax import paths, sharding
from bagssl_jax.data import augment
from bagssl_jax.evaluation import embedding, probes, tables
from bagssl_jax.models import vit
from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import pipeline, sources

PATCH_PROBE_DEFAULTS = dict(patch_probe_tokens=8,
                            patch_probe_train_images=5000,
                            patch_probe_test_images=2000)


def _setting(config, name):
  return config.eval.get(name, PATCH_PROBE_DEFAULTS[name])


def _probe(train_x, train_y, test_x, test_y, num_classes, ev):
  lin = probes.linear_probe(
      train_x, train_y, test_x, test_y, num_classes,
      learning_rates=tuple(ev.probe_learning_rates),
      weight_decays=tuple(ev.probe_weight_decays), steps=ev.probe_steps,
      batch_size=ev.probe_batch_size or None, seed=ev.seed)
  knn = probes.knn_classify(train_x, train_y, test_x, test_y, num_classes,
                            k=ev.knn_k, temperature=ev.knn_temperature)
  return {"linear": float(lin["accuracy"]), "knn": float(knn)}


def patch_token_features(model, variables, config, source, max_images, mesh,
                         tokens_per_image, seed=0):
  """(n * tokens_per_image, D) patch tokens of whole images, their images'
  labels, and their token positions; the tokens of an image are drawn
  (without replacement) from a hash of (seed, image index)."""
  dp = sharding.data_parallel_size(mesh)
  batch_size = max(dp, 256 // dp * dp)
  c = config

  def tokens(variables, images):
    x = augment.normalize(augment.to_float(images), c.data.mean, c.data.std)
    return model.apply(variables, x, method=model.patch_tokens)

  fn = jax.jit(tokens, in_shardings=(sharding.replicated(mesh),
                                     sharding.batch_sharding(mesh)),
               out_shardings=sharding.replicated(mesh))
  feats, labels, positions = [], [], []
  for batch in pipeline.eval_batches(
      source, batch_size, c.data.channels, c.data.get("image_size") or 0,
      max_images, jax.process_index(), jax.process_count()):
    t = np.asarray(jax.device_get(fn(variables, sharding.global_batch(
        batch["image"], mesh))))
    t, index = t[batch["mask"]], batch["index"][batch["mask"]]
    n_tok = t.shape[1]
    m = min(tokens_per_image, n_tok)
    # A hashed permutation of each image's tokens: its first m positions.
    keys = patches_lib.random_positions(seed, index, n_tok, (2**20, 1), 1)
    pos = np.argsort(keys[..., 0], axis=1, kind="stable")[:, :m]
    feats.append(np.take_along_axis(t, pos[..., None], axis=1).reshape(
        -1, t.shape[-1]))
    labels.append(np.repeat(batch["label"][batch["mask"]], m))
    positions.append(pos.reshape(-1))
  return (np.concatenate(feats), np.concatenate(labels),
          np.concatenate(positions))


def patch_level_probe(model, variables, config, mesh, train_src, test_src):
  """{"patch_tokens": {"linear", "knn"}}: individual tokens vs image label."""
  m = _setting(config, "patch_probe_tokens")
  tr_x, tr_y, _ = patch_token_features(
      model, variables, config, train_src,
      _setting(config, "patch_probe_train_images"), mesh, m, seed=1)
  te_x, te_y, _ = patch_token_features(
      model, variables, config, test_src,
      _setting(config, "patch_probe_test_images"), mesh, m, seed=2)
  return {"patch_tokens": _probe(tr_x, tr_y, te_x, te_y, train_src.num_classes,
                                 config.eval)}


def evaluate_vit(model, variables, config, mesh, workdir=None):
  """The ViT eval (module docstring); writes WORKDIR/eval/results.json."""
  ev, t0 = config.eval, time.time()
  train_src = sources.load_source(config.data, config.data.train_split)
  test_src = sources.load_source(config.data, config.data.test_split)
  image_shape = sources.image_shape(train_src, config.data)
  embedder = embedding.PassEmbedder(model.clone(representation="all"),
                                    config, image_shape, mesh)
  train_f, train_y = embedder(variables, train_src, ev.max_train_images)
  test_f, test_y = embedder(variables, test_src, ev.max_test_images)
  t_embed = time.time() - t0
  d, blocks = model.dim, min(vit.EVAL_BLOCKS, model.depth)
  widths = {"cls": d, "mean_patch": d, "cls_blocks": (blocks + 1) * d}
  start = np.cumsum([0] + [widths[r] for r in vit.REPRESENTATIONS])
  cols = {r: slice(start[i], start[i + 1])
          for i, r in enumerate(vit.REPRESENTATIONS)}
  reps = [config.model.representation] + [
      r for r in vit.REPRESENTATIONS if r != config.model.representation]
  results = {}
  for p in embedder.protocols:
    for rep in reps:
      results[f"{p}:{rep}"] = _probe(train_f[p][:, cols[rep]], train_y,
                                     test_f[p][:, cols[rep]], test_y,
                                     train_src.num_classes, ev)
  t_probe = time.time()
  results.update(patch_level_probe(model, variables, config, mesh, train_src,
                                   test_src))
  logging.info("eval: embedded %d train + %d test images in %.0fs, image "
               "probes in %.0fs, patch-level probe in %.0fs", len(train_y),
               len(test_y), t_embed, t_probe - t0 - t_embed,
               time.time() - t_probe)
  print(tables.format_table(results), flush=True)
  if workdir and jax.process_index() == 0:
    tables.save(paths.join(workdir, "eval"), results, with_markdown=False)
  return results
