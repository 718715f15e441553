"""grain pipelines: the training patch stream and the eval image batches.

Train: batches of (stream position, record index) from a per-epoch
permutation, this process's block of each global batch -> read, preprocess
and extract patches for the whole batch at once. Each element of
the resulting iterator is {"patches": uint8 (b, N, p, p, C),
"label": int32 (b,)} for this process's b = batch_size / process_count images
(with config.crop="rrc": {"image": uint8 (b, H, W, C), "boxes": (b, N, 4),
"label"}, cropped and resized on device; config.crop="multicrop" (DINO,
SelfPatch): the same with (b, G + L, 4) boxes, G global and L local crops).
"""
from __future__ import annotations

import dataclasses
import sys

import grain
import numpy as np
from PIL import Image

from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import rrc
from bagssl_jax.data.sources import ArraySource


@dataclasses.dataclass(frozen=True)
class Preprocess(grain.transforms.Map):
  """Converts an image to `channels` and, if `image_size`, resizes its shorter
  side to `image_size` and centre-crops a square (variable-size datasets)."""
  channels: int
  image_size: int = 0

  def map(self, element):
    return {**element, "image": preprocess_image(element["image"],
                                                 self.channels,
                                                 self.image_size)}


def preprocess_image(image, channels, image_size=0):
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 4:
    image = image[..., :3]
  if image.shape[-1] == 1 and channels == 3:
    image = np.repeat(image, 3, axis=-1)
  elif image.shape[-1] == 3 and channels == 1:
    image = np.round(image @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[
        ..., None]
  if image_size and image.shape[:2] != (image_size, image_size):
    h, w = image.shape[:2]
    scale = image_size / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    image = np.asarray(pil.resize((nw, nh), Image.BILINEAR)).reshape(
        nh, nw, channels)
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    image = image[top:top + image_size, left:left + image_size]
  return image


def read_batch(source, record_indices, channels, image_size=0):
  """uint8 images (b, H, W, C) and int32 labels (b,) of `record_indices`:
  one fancy-indexing gather for in-memory sources, else record by record
  (decode + `preprocess_image`)."""
  if isinstance(source, ArraySource) and not image_size:
    images = source.images[record_indices]
    if images.ndim == 3:
      images = images[..., None]
    if images.shape[-1] != channels:
      images = np.stack([preprocess_image(im, channels) for im in images])
    return images, source.labels[record_indices].astype(np.int32)
  records = [source[int(i)] for i in record_indices]
  images = np.stack([preprocess_image(r["image"], channels, image_size)
                     for r in records])
  return images, np.array([r["label"] for r in records], np.int32)


@dataclasses.dataclass(frozen=True)
class CropSpec:
  """How training views are cut from a batch of images (from the config)."""
  seed: int
  crop: str = "patches"  # "patches" | "rrc" | "multicrop"
  num_patches: int = 2
  patch_size: int = 14
  rrc_scale: tuple = (0.08, 1.0)
  rrc_ratio: tuple = (3 / 4, 4 / 3)
  # DINO's multi-crop: (number, scale) of the global and the local crops.
  multicrop: tuple = ((2, (0.4, 1.0)), (4, (0.05, 0.4)))

  @classmethod
  def from_config(cls, config, seed=None):
    mc = config.get("multicrop")
    multicrop = (((mc.num_global, tuple(mc.global_scale)),
                  (mc.num_local, tuple(mc.local_scale))) if mc else
                 cls.multicrop)
    return cls(config.seed if seed is None else seed,
               config.get("crop", "patches"), config.num_patches,
               config.patch_size, tuple(config.rrc_scale),
               tuple(config.rrc_ratio), multicrop)


def crop_views(images, labels, stream_index, spec):
  """The training element of a batch of images: `num_patches` fixed-size
  patches per image at positions hashed from (seed, stream index)
  ("patches"); or the images with RandomResizedCrop boxes (b, N, 4) ("rrc"),
  or DINO's global then local boxes (b, G + L, 4) ("multicrop"), all cut and
  resized on the device."""
  hw = images.shape[1:3]
  if spec.crop == "patches":
    pos = patches_lib.random_positions(spec.seed, stream_index,
                                       spec.num_patches, hw, spec.patch_size)
    return {"patches": patches_lib.extract_patches(images, pos,
                                                   spec.patch_size),
            "label": labels}
  if spec.crop == "rrc":
    boxes = patches_lib.random_resized_crops(
        spec.seed, stream_index, spec.num_patches, hw, spec.rrc_scale,
        spec.rrc_ratio)
  else:
    boxes = np.concatenate([patches_lib.random_resized_crops(
        spec.seed, stream_index, n, hw, tuple(scale), spec.rrc_ratio,
        salt=salt) for salt, (n, scale) in enumerate(spec.multicrop, 1)],
                           axis=1)
  return {"image": images, "boxes": boxes, "label": labels}


@dataclasses.dataclass(frozen=True)
class ReadAndCrop(grain.transforms.Map):
  """A batch of (stream index, record index) rows -> the batch's images, read
  and preprocessed, then cut into training views (`crop_views`). Working on
  whole batches keeps grain's per-element cost to integers."""
  source: object
  channels: int
  image_size: int
  spec: CropSpec

  def map(self, rows):
    if self.spec.crop == "rrc" and self.image_size:  # boxes on the original
      return rrc.read_rrc_batch(self.source, rows, self.channels,
                                self.image_size, self.spec, preprocess_image)
    images, labels = read_batch(self.source, rows[:, 1], self.channels,
                                self.image_size)
    return crop_views(images, labels, rows[:, 0], self.spec)


class ShuffledBatchIndices(grain.MapDataset):
  """Element k: this process's rows of global batch k, as (b, 2) int64
  [stream position, record index].

  The stream visits all records once per epoch in a permutation seeded by
  (seed, epoch) and never ends; global batch k is stream positions
  k * B + [0, B), of which process block i holds i * b + [0, b) (b = B /
  num_blocks). The processes' local batches, concatenated in block order (as
  `jax.make_array_from_process_local_data` does), are the 1-process batch,
  row for row, whatever the number of processes. Random access (a pure
  function of k), so grain can checkpoint, shard over workers and prefetch.
  """

  def __init__(self, num_records, seed, global_batch, block=0, num_blocks=1):
    super().__init__()
    self._n, self._seed, self._global = num_records, seed, global_batch
    self._local = global_batch // num_blocks
    self._offset = block * self._local
    self._perms = {}

  def __len__(self):
    return sys.maxsize // self._global

  def __str__(self):
    return (f"ShuffledBatchIndices(n={self._n}, batch={self._global}, "
            f"rows {self._offset}..{self._offset + self._local})")

  def _permutation(self, epoch):
    perm = self._perms.get(epoch)
    if perm is None:
      perm = np.random.default_rng([self._seed, epoch]).permutation(self._n)
      if len(self._perms) >= 4:
        self._perms = {}
      self._perms[epoch] = perm
    return perm

  def __getitem__(self, k):
    if isinstance(k, slice):
      return self.slice(k)
    pos = k * self._global + self._offset + np.arange(self._local,
                                                      dtype=np.int64)
    epoch, offset = np.divmod(pos, self._n)
    record = np.empty_like(pos)
    for e in np.unique(epoch):
      rows = epoch == e
      record[rows] = self._permutation(int(e))[offset[rows]]
    return np.stack([pos, record], axis=1)


def make_train_iterator(config, source, process_index=0, process_count=1):
  """Checkpointable grain iterator of this process's patch batches: block
  `process_index` of `process_count` equal blocks of each global batch (see
  `sharding.process_batch_block`).

  The batches of record indices come from `ShuffledBatchIndices`; reading,
  preprocessing and cropping then run once per batch (`ReadAndCrop`),
  vectorised."""
  data = config.data
  ds = ShuffledBatchIndices(len(source), config.seed, config.batch_size,
                            process_index, process_count)
  ds = ds.map(ReadAndCrop(source, data.channels, data.get("image_size") or 0,
                          CropSpec.from_config(config)))
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=data.get("read_threads", 4),
      prefetch_buffer_size=data.get("prefetch", 4)))
  if data.get("num_workers", 0) > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=data.num_workers))
  return iter(it)


def eval_batches(source, batch_size, channels, image_size=0, max_images=None,
                 process_index=0, process_count=1):
  """Yields fixed-size {"image", "label", "mask", "index"} batches of this
  process's share of `source` in order; the last batch is zero-padded."""
  n = len(source) if not max_images else min(len(source), max_images)
  local = batch_size // process_count
  num_batches = -(-n // batch_size)
  if isinstance(source, ArraySource) and not image_size:
    get = lambda idx: (source.images[idx], source.labels[idx])  # fast path
  else:
    ds = grain.MapDataset.source(source).map(Preprocess(channels, image_size))
    def get(idx):
      items = [ds[int(i)] for i in idx]
      return (np.stack([it["image"] for it in items]),
              np.array([it["label"] for it in items], np.int32))
  for b in range(num_batches):
    idx = np.arange(b * batch_size, min((b + 1) * batch_size, n))
    idx = idx[process_index * local:(process_index + 1) * local]
    images, labels = get(idx)
    if images.ndim == 3:
      images = images[..., None]
    pad = local - len(idx)
    mask = np.arange(local) < len(idx)
    if pad:
      images = np.concatenate([images, np.zeros((pad,) + images.shape[1:],
                                                images.dtype)])
      labels = np.concatenate([labels, np.zeros((pad,), labels.dtype)])
      idx = np.concatenate([idx, np.zeros((pad,), idx.dtype)])
    yield {"image": images, "label": labels.astype(np.int32), "mask": mask,
           "index": idx}

