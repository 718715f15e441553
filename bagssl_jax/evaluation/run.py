"""Evaluation by patch aggregation: the orchestration.

`evaluate` is the one entry for training's end-of-run eval and the eval
binary: a ViT (DINO / SelfPatch) goes to evaluation/vit.py; a ResNet model
embeds train and test images under every protocol of
`config.eval.protocols` (protocols.py; streamed per-image means,
embedding.py), fits the probes (linear, kNN k=20 and k=200, low-shot linear;
probes.py), measures convergence (Fig. 3a) and representation health
(health.py), draws the figures (figures.py) and writes WORKDIR/eval/
{results.json, results.md, *.png} (tables.py).
"""
from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np
from absl import logging

from bagssl_jax import config as config_lib
from bagssl_jax import models, sharding
from bagssl_jax import paths as paths_lib
from bagssl_jax.data import sources
from bagssl_jax.evaluation import embedding, figures, health, probes
from bagssl_jax.evaluation import protocols, tables
from bagssl_jax.evaluation import vit as vit_eval


def eval_data_config(config):
  """config.data, or the eval.data dataset when eval.data.name is set
  (transfer). Channels and normalisation stay the model's; eval.data.image_size
  0 keeps the run's data.image_size."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  other = config.eval.get("data")
  if other is not None and other.get("name"):
    data.name, data.path = other.name, other.get("path", "")
    data.image_size = other.get("image_size") or data.get("image_size") or 0
    for split in ("train_split", "test_split"):
      if other.get(split):
        data[split] = other[split]
  return data


def prepare(config):
  """Checks the eval config and opens the data, before anything compiles.
  Returns (data config, train source, test source, image shape)."""
  config_lib.validate_eval(config)
  data = eval_data_config(config)
  def opened(split):  # labels checked before the next split is opened
    src = sources.load_source(data, split)
    if len(src) == 0:
      raise sources.DataError(f"split '{split}' of {data.name} is empty")
    if not getattr(src, "num_classes", None):
      raise sources.no_labels_error(src, split, data.name)
    return src
  train_src = opened(data.train_split)
  test_src = opened(data.test_split)
  try:
    sources.image_shape(train_src, data)
  except sources.DataError:
    field = "eval.data" if config.eval.data.get("name") else "data"
    raise sources.DataError(f"images of {data.name} differ in size: set "
                            f"config.{field}.image_size (resize + centre "
                            "crop)") from None
  image_shape = sources.image_shape(train_src, data)
  side = config.eval.get("central_crop") or 0
  if side > min(image_shape[:2]):
    raise config_lib.ConfigError(
        f"config.eval.central_crop {side} is larger than the "
        f"{image_shape[0]}x{image_shape[1]} eval images of {data.name}")
  if config.patch_size > min(image_shape[:2]):
    raise config_lib.ConfigError(
        f"config.patch_size {config.patch_size} is larger than the "
        f"{image_shape[0]}x{image_shape[1]} eval images of {data.name}")
  return data, train_src, test_src, image_shape


def evaluate(model, variables, config, mesh, workdir=None, step=None,
             prepared=None):
  """Runs every protocol, probe and figure; writes WORKDIR/eval/; returns
  the results dict (see tables.py for its layout). `prepared`: what
  `prepare(config)` returned, if the caller checked the data already."""
  if models.is_vit(config):  # DINO / SelfPatch
    return vit_eval.evaluate_vit(model, variables, config, mesh, workdir)
  ev, t0 = config.eval, time.time()
  data, train_src, test_src, image_shape = prepared or prepare(config)
  results, meta, test_feats = {}, {"images": {}, "inputs_per_image": {}}, {}
  conv, num_classes = {}, train_src.num_classes
  for family, (max_train, max_test), names in protocols.plan_passes(
      ev.protocols, ev):
    t = time.time()
    embedder = embedding.PassEmbedder(model, config, image_shape, mesh, names)
    train_f, train_y = embedder(variables, train_src, max_train, data, "train")
    test_f, test_y = embedder(variables, test_src, max_test, data, "test")
    t_embed = time.time() - t
    for n in embedder.convergence_ns:
      conv.setdefault(n, float(np.mean(test_f[f"cos_{n}"])))
    for name in names:
      results[name] = probes.probe_all(train_f[name], train_y, test_f[name],
                                       test_y, num_classes, ev)
      test_feats[name] = (test_f[name], test_y)
      meta["images"][name] = (len(train_y), len(test_y))
      meta["inputs_per_image"][name] = protocols.patches_per_image(
          name, image_shape[:2], config)
    logging.info("eval: %s pass %s on %d + %d images: embedding %.0fs, probes "
                 "%.0fs", family, names, len(train_y), len(test_y), t_embed,
                 time.time() - t - t_embed)
  results = {p: results[p] for p in ev.protocols}
  if conv:
    results["convergence"] = {n: conv[n] for n in sorted(
        conv, key=lambda n: float("inf") if n == "all" else int(n))}
  out_dir = paths_lib.join(workdir, "eval") if workdir else None
  if jax.process_index() == 0:
    if out_dir:
      paths_lib.makedirs(out_dir)
    _extras(model, variables, config, data, test_src, image_shape, results,
            test_feats, out_dir)
  meta.update(step=step, workdir=workdir, data=data.name, knn_k=ev.knn_k,
              seconds=round(time.time() - t0, 1))
  results["meta"] = meta
  logging.info("eval: done in %.0fs", time.time() - t0)
  print(tables.format_table(results), flush=True)
  if out_dir and jax.process_index() == 0:
    tables.save(out_dir, results)
  return results


def _extras(model, variables, config, data, test_src, image_shape, results,
            test_feats, out_dir):
  """Health, figures and the t-SNE map (process 0, on its local devices)."""
  ev = config.eval
  if not (ev.health_images or (ev.figures and out_dir) or
          (ev.tsne_images and out_dir)):
    return
  local = sharding.make_mesh({"data": -1, "fsdp": 1}, jax.local_devices())
  local_vars = jax.device_get(variables)
  patch_model = embedding.PatchModel(model, config, local)
  if ev.health_images:
    results["health"], std = health.health(patch_model, local_vars, config,
                                           test_src, ev.health_images, data)
  paths = (figures.paths(paths_lib.path(out_dir).parent) if out_dir
           else {})
  if ev.figures and out_dir:
    if "convergence" in results:
      figures.convergence(results["convergence"], paths["convergence"])
    figures.accuracy_vs_patches(tables.protocol_results(results),
                                image_shape[:2], config,
                                paths["accuracy_vs_patches"])
    images = health.first_images(test_src, ev.figure_images, config, data)
    figures.similarity_heatmap(images[0], patch_model, local_vars,
                               config.patch_size, paths["similarity_heatmap"])
    figures.nearest_patches(images, patch_model, local_vars, config.patch_size,
                            ev.all_patches_stride, paths["nearest_patches"])
    if ev.health_images:
      figures.health(std, paths["health"])
  if ev.tsne_images and out_dir:
    name = ev.tsne_protocol if ev.tsne_protocol in test_feats else next(
        iter(test_feats))
    x, y = test_feats[name]
    xy = health.tsne(x[:ev.tsne_images], ev.seed)
    figures.tsne_map(xy, y[:ev.tsne_images], f"t-SNE of {name} features "
                     f"({len(xy)} test images)", paths["tsne"])
