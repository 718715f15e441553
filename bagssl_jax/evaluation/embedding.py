"""Streamed per-image embeddings of the protocols of one pass.

`PassEmbedder` runs one jitted call per batch of images: the host cuts the
patches (or crop boxes) of every protocol of the pass, the device embeds them
with eval-mode BatchNorm and reduces them to one vector per image and
protocol (means; cumulative sums for nested k), so memory does not grow with
the number of patches per image. With `central` and random patches (and the
grid) in the pass it also returns, per image, the cosine between the
whole-image h and the mean h of the first N patches (Fig. 3a).
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from bagssl_jax import reporting, sharding
from bagssl_jax.data import augment
from bagssl_jax.evaluation import protocols
from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import pipeline
from bagssl_jax.data.sources import ArraySource


def _cos(a, b):
  a = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
  b = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
  return (a * b).sum(-1)


class PassEmbedder:
  """Per-image features of `names` (one protocol family), batch by batch."""

  def __init__(self, model, config, image_shape, mesh, names=None):
    self.config, self.mesh, ev = config, mesh, config.eval
    self.protocols = list(names if names is not None else ev.protocols)
    parsed = [protocols.parse(n) for n in self.protocols]
    if len({p.family for p in parsed}) != 1:
      raise ValueError(f"one pass embeds one protocol family: {self.protocols}")
    self.family = parsed[0].family
    hw, p = image_shape[:2], config.patch_size
    self.num_random = max([q.k for q in parsed if q.kind == "random"], default=0)
    self.num_crops = max([q.k for q in parsed if q.kind == "crops"], default=0)
    self.central = any(q.kind == "central" for q in parsed)
    self.grid = (patches_lib.grid_positions(hw, p, ev.all_patches_stride)
                 if any(q.kind == "grid" for q in parsed)
                 else np.zeros((0, 2), np.int64))
    self.local = (patches_lib.grid_positions(hw, p, ev.local_stride)
                  if self.family == "local" else np.zeros((0, 2), np.int64))
    self.cells = (protocols.local_cells(self.local, p, hw, ev.local_grid)
                  if self.family == "local" else None)
    per_image = (self.num_random + len(self.grid) + len(self.local) +
                 self.num_crops + (4 if self.central else 0))
    dp = sharding.data_parallel_size(mesh)
    self.batch_size = max(dp, ev.batch_patches // max(per_image, 1) // dp * dp)
    self.model = model
    self._fn = jax.jit(self._embed, in_shardings=(
        sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                       out_shardings=sharding.replicated(mesh))

  @property
  def convergence_ns(self):
    """The N of the cosines this pass returns ('all' for the grid)."""
    if not (self.central and self.num_random):
      return []
    ns = [str(n) for n in protocols.CONVERGENCE_NS if n <= self.num_random]
    return ns + (["all"] if len(self.grid) else [])

  def _h(self, variables, x):
    """uint8 or float [0, 1] inputs (..., s, s, C) -> h (eval BatchNorm)."""
    c = self.config
    if x.dtype == jnp.uint8:
      x = augment.to_float(x, c.input_size)
    x = augment.normalize(x, c.data.mean, c.data.std)
    return self.model.apply(variables, x, method=self.model.embed)

  def _bag(self, variables, patches):
    b, n = patches.shape[:2]
    return self._h(variables, patches.reshape((b * n,) + patches.shape[2:])
                   ).reshape(b, n, -1)

  def _embed(self, variables, batch):
    out = {"label": batch["label"], "mask": batch["mask"]}
    central = None
    if self.central:
      central = self._h(variables, augment.to_float(
          central_crop(batch["image"], self.config.eval.get("central_crop"))))
      out["central"] = central
    if self.family == "crops":
      crops = augment.crop_and_resize(batch["image"].astype(jnp.float32) / 255.,
                                      batch["boxes"], self.config.input_size)
      csum = jnp.cumsum(self._bag(variables, crops), axis=1)
      for name in self.protocols:
        k = protocols.parse(name).k
        out[name] = csum[:, k - 1] / k
    if self.family == "local":
      h = self._bag(variables, batch["local"])
      cells = jnp.einsum("lg,bld->bgd", jnp.asarray(self.cells), h)
      out["local_aggregation"] = cells.reshape(cells.shape[0], -1)
    if self.num_random:
      csum = jnp.cumsum(self._bag(variables, batch["random"]), axis=1)
      for name in self.protocols:
        q = protocols.parse(name)
        if q.kind == "random":
          out[name] = csum[:, q.k - 1] / q.k
      if central is not None:
        for n in self.convergence_ns:
          if n != "all":
            out[f"cos_{n}"] = _cos(central, csum[:, int(n) - 1])
    if len(self.grid):
      out["all_patches"] = self._bag(variables, batch["grid"]).mean(1)
      if central is not None and self.num_random:
        out["cos_all"] = _cos(central, out["all_patches"])
    return out

  def host_batch(self, images, index):
    """The host-side inputs of one batch of uint8 images (b, H, W, C)."""
    c, n = self.config, len(images)
    batch = {}
    if self.central or self.family == "crops":
      batch["image"] = images
    if self.num_random:
      pos = patches_lib.random_positions(c.eval.seed, index, self.num_random,
                                         images.shape[1:3], c.patch_size)
      batch["random"] = patches_lib.extract_patches(images, pos, c.patch_size)
    for key, grid in (("grid", self.grid), ("local", self.local)):
      if len(grid):
        batch[key] = patches_lib.extract_patches(
            images, np.broadcast_to(grid, (n,) + grid.shape), c.patch_size)
    if self.family == "crops":
      batch["boxes"] = patches_lib.random_resized_crops(
          c.eval.seed, index, self.num_crops, images.shape[1:3],
          tuple(c.rrc_scale), tuple(c.rrc_ratio))
    return batch

  def __call__(self, variables, source, max_images=0, data_config=None,
               what=""):
    """({protocol or cos_N: (n, ...)}, labels (n,)) of the first images;
    `what` (e.g. "train") names the pass in its progress lines."""
    data = data_config or self.config.data
    outputs = []
    total = len(source) if not max_images else min(len(source), max_images)
    progress = reporting.Progress(
        total, _log_progress(f"{self.family} pass{' ' + what if what else ''}"),
        self.config.eval.get("progress_every_seconds", 60))
    for batch in pipeline.eval_batches(
        source, self.batch_size, self.config.data.channels,
        data.get("image_size") or 0, max_images, jax.process_index(),
        jax.process_count()):
      host = self.host_batch(batch["image"], batch["index"])
      host.update(label=batch["label"], mask=batch["mask"])
      # Dispatch this batch before fetching the previous one: the host cuts
      # patches while the device embeds.
      outputs.append(self._fn(variables, sharding.global_batch(host,
                                                               self.mesh)))
      if len(outputs) > 1:
        outputs[-2] = _masked(jax.device_get(outputs[-2]))
        progress.update(len(outputs[-2]["label"]))
    if outputs:
      outputs[-1] = _masked(jax.device_get(outputs[-1]))
      progress.update(len(outputs[-1]["label"]), final=True)
    keys = [k for k in (outputs[0] if outputs else {}) if k != "label"]
    feats = {k: np.concatenate([o[k] for o in outputs]) for k in keys}
    labels = (np.concatenate([o["label"] for o in outputs]) if outputs
              else np.zeros((0,), np.int32))
    return feats, labels


def central_crop(images, side):
  """The centred side x side square of (b, H, W, C) images (0: all); with
  images resized to 256, side 224 is the standard ImageNet central view."""
  if not side:
    return images
  h, w = images.shape[1:3]
  top, left = (h - side) // 2, (w - side) // 2
  return images[:, top:top + side, left:left + side]


def _log_progress(name):
  """A `reporting.Progress` emitter: one log line per update."""

  def emit(done, total, rate, eta, final):
    logging.info("eval: %s: %d/%d images, %.1f images/s, %s", name, done,
                 total, rate, "done" if final else f"ETA {_duration(eta)}")

  return emit


def _duration(s):
  s = int(s)
  return (f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else
          f"{s // 60}m{s % 60:02d}s")


def _masked(out):
  """Drops the padding rows of a fetched batch output."""
  mask = out.pop("mask")
  return {k: v[mask] for k, v in out.items()}


class PatchModel:
  """(h, z) of uint8 patches (n, p, p, C) in fixed-size sharded chunks."""

  def __init__(self, model, config, mesh, chunk=512):
    self.config, self.mesh, self.model = config, mesh, model
    dp = sharding.data_parallel_size(mesh)
    self.chunk = max(dp, chunk // dp * dp)
    self._fn = jax.jit(self._apply, in_shardings=(
        sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                       out_shardings=sharding.replicated(mesh))

  def _apply(self, variables, x):
    c = self.config
    x = augment.normalize(augment.to_float(x, c.input_size), c.data.mean,
                          c.data.std)
    return self.model.apply(variables, x, train=False)

  def __call__(self, variables, patches):
    patches = np.asarray(patches)
    hs, zs = [], []
    for start in range(0, len(patches), self.chunk):
      x = patches[start:start + self.chunk]
      m = len(x)
      if m < self.chunk:
        x = np.concatenate([x, np.zeros((self.chunk - m,) + x.shape[1:],
                                        x.dtype)])
      h, z = jax.device_get(self._fn(variables, jax.device_put(
          x, sharding.batch_sharding(self.mesh))))
      hs.append(h[:m])
      zs.append(z[:m])
    return np.concatenate(hs), np.concatenate(zs)


def embed_images(model, config, variables, images, protocol="16_patches",
                 cache=None):
  """uint8 images (n, H, W, C) -> (n, d) features of `protocol` on one local
  device (`checkpoints.LoadedModel.embed_images`); `cache` keeps the
  compiled embedder per (protocol, image shape)."""
  protocols.parse(protocol)  # ValueError for an unknown name
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  images = np.stack([pipeline.preprocess_image(
      im, config.data.channels, config.data.get("image_size") or 0)
                     for im in images])
  cache = {} if cache is None else cache
  key = (protocol, images.shape[1:])
  if key not in cache:
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.local_devices()[:1])
    cache[key] = (PassEmbedder(model, config, images.shape[1:], mesh,
                               [protocol]), mesh)
  embedder, mesh = cache[key]
  variables = jax.device_put(variables, sharding.replicated(mesh))
  feats, _ = embedder(variables, ArraySource(
      images, np.zeros(len(images), np.int32), 0))
  return feats[protocol]
