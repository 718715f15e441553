"""Evaluation by patch aggregation: embeddings h averaged per image, probed.

Protocols: `central` (the whole image), `<k>_patch(es)` (k random patches,
fixed seed; nested, so 1 and 16 share one forward pass) and `all_patches`
(every position on an `eval.all_patches_stride` grid). Features are averaged
per image inside the jitted forward, batch by batch, so memory does not grow
with the number of patches. A linear probe (optax) and a weighted kNN are fit
on train features and scored on test features.

  python -m bagssl_jax.eval --workdir=DIR [--step=N]
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from bagssl_jax import augment, probes, sharding
from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import pipeline, sources


def parse_protocol(name):
  """'central' -> ('central', 1); '16_patches' -> ('random', 16); 'all_patches'
  -> ('grid', 0)."""
  if name in ("central", "all_patches"):
    return ("central", 1) if name == "central" else ("grid", 0)
  m = re.fullmatch(r"(\d+)_patch(es)?", name)
  if not m or int(m.group(1)) < 1:
    raise ValueError(f"config.eval.protocols: unknown protocol '{name}' (use "
                     "central, <k>_patches or all_patches)")
  return ("random", int(m.group(1)))


class PatchEmbedder:
  """Per-image mean embeddings of every protocol, one jitted call per batch."""

  def __init__(self, model, config, image_shape, mesh):
    self.config, self.mesh, ev = config, mesh, config.eval
    kinds = [parse_protocol(p) for p in ev.protocols]
    self.protocols = list(ev.protocols)
    self.num_random = max([k for kind, k in kinds if kind == "random"],
                          default=0)
    self.grid = (patches_lib.grid_positions(image_shape[:2], config.patch_size,
                                            ev.all_patches_stride)
                 if any(kind == "grid" for kind, _ in kinds)
                 else np.zeros((0, 2), np.int32))
    per_image = self.num_random + len(self.grid)
    per_image += 4 if "central" in self.protocols else 0
    dp = sharding.data_parallel_size(mesh)
    self.batch_size = max(dp, ev.batch_patches // max(per_image, 1) // dp * dp)
    self.model = model
    self._fn = jax.jit(self._embed, in_shardings=(
        sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                       out_shardings=sharding.replicated(mesh))

  def _h(self, variables, x):
    c = self.config
    x = augment.normalize(augment.to_float(x, c.input_size), c.data.mean,
                          c.data.std)
    return self.model.apply(variables, x, method=self.model.embed)

  def _embed(self, variables, batch):
    out = {"label": batch["label"], "mask": batch["mask"]}
    if "central" in self.protocols:
      x = augment.normalize(augment.to_float(batch["image"]),
                            self.config.data.mean, self.config.data.std)
      out["central"] = self.model.apply(variables, x, method=self.model.embed)
    for name in ("random", "grid"):
      patches = batch[name]
      if patches.shape[1] == 0:
        continue
      b, n = patches.shape[:2]
      h = self._h(variables, patches.reshape((b * n,) + patches.shape[2:]))
      h = h.reshape(b, n, -1)
      if name == "grid":
        out["all_patches"] = h.mean(1)
      else:
        csum = jnp.cumsum(h, axis=1)
        for p in self.protocols:
          kind, k = parse_protocol(p)
          if kind == "random":
            out[p] = csum[:, k - 1] / k
    return out

  def __call__(self, variables, source, max_images=0):
    """{protocol: (n, d) features}, labels (n,) of the first images of source."""
    c, outputs = self.config, []
    for batch in pipeline.eval_batches(
        source, self.batch_size, c.data.channels, c.data.get("image_size") or 0,
        max_images, jax.process_index(), jax.process_count()):
      images, n = batch["image"], len(batch["image"])
      rand = patches_lib.random_positions(c.eval.seed, batch["index"],
                                          self.num_random, images.shape[1:3],
                                          c.patch_size)
      grid = np.broadcast_to(self.grid, (n,) + self.grid.shape)
      # Dispatch this batch before fetching the previous one: the host
      # extracts patches while the device embeds.
      outputs.append(self._fn(variables, sharding.global_batch({
          "image": images, "label": batch["label"], "mask": batch["mask"],
          "random": patches_lib.extract_patches(images, rand, c.patch_size),
          "grid": patches_lib.extract_patches(images, grid, c.patch_size)},
                                                               self.mesh)))
      if len(outputs) > 1:
        outputs[-2] = _masked(jax.device_get(outputs[-2]))
    if outputs:
      outputs[-1] = _masked(jax.device_get(outputs[-1]))
    feats = {p: np.concatenate([o[p] for o in outputs]) for p in self.protocols}
    return feats, np.concatenate([o["label"] for o in outputs])


def _masked(out):
  """Drops the padding rows of a fetched batch output."""
  mask = out.pop("mask")
  return {k: v[mask] for k, v in out.items()}


def evaluate(model, variables, config, mesh, workdir=None):
  """Runs every protocol; writes WORKDIR/eval/results.json; returns results."""
  ev, t0 = config.eval, time.time()
  train_src = sources.load_source(config.data, config.data.train_split)
  test_src = sources.load_source(config.data, config.data.test_split)
  image_shape = sources.image_shape(train_src, config.data)
  embedder = PatchEmbedder(model, config, image_shape, mesh)
  train_f, train_y = embedder(variables, train_src, ev.max_train_images)
  test_f, test_y = embedder(variables, test_src, ev.max_test_images)
  t_embed = time.time() - t0
  num_classes = train_src.num_classes
  results = {}
  for p in embedder.protocols:
    lin = probes.linear_probe(
        train_f[p], train_y, test_f[p], test_y, num_classes,
        learning_rates=tuple(ev.probe_learning_rates),
        weight_decays=tuple(ev.probe_weight_decays), steps=ev.probe_steps,
        batch_size=ev.probe_batch_size or None, seed=ev.seed)
    knn = probes.knn_classify(train_f[p], train_y, test_f[p], test_y,
                              num_classes, k=ev.knn_k,
                              temperature=ev.knn_temperature)
    results[p] = {"linear": float(lin["accuracy"]), "knn": float(knn)}
  logging.info("eval: embedded %d train + %d test images in %.0fs, probes in "
               "%.0fs", len(train_y), len(test_y), t_embed,
               time.time() - t0 - t_embed)
  print(format_table(results), flush=True)
  if workdir and jax.process_index() == 0:
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    with open(os.path.join(workdir, "eval", "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results


def format_table(results):
  lines = [f"{'protocol':<14}{'linear':>8}{'knn':>8}"]
  for p, r in results.items():
    lines.append(f"{p:<14}{r['linear']:>8.4f}{r['knn']:>8.4f}")
  return "\n".join(lines)


def main(argv):
  del argv
  from bagssl_jax import checkpoints  # pylint: disable=g-import-not-at-top
  workdir = flags.FLAGS.workdir
  try:
    m = checkpoints.load(workdir, flags.FLAGS.step)
    run = evaluate
    if checkpoints.steps.is_vit(m.config):  # DINO / SelfPatch ViTs
      from bagssl_jax import patch_probe  # pylint: disable=g-import-not-at-top
      run = patch_probe.evaluate_vit
    run(m.model, m.variables, m.config, sharding.make_mesh(m.config.mesh),
        workdir)
  except (checkpoints.CheckpointError, sources.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  # Flags live here so that importing this module (training does) adds none.
  flags.DEFINE_string("workdir", None, "Run directory (config.json, checkpoints/).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: newest).")
  flags.mark_flag_as_required("workdir")
  app.run(main)
