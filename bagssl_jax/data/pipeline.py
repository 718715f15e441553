"""grain pipelines: the training patch stream and the eval image batches.

Train: batches of (stream position, record index) from a per-epoch
permutation, this process's block of each global batch -> read and
preprocess (image by image on parallel threads / workers for sources that
decode, one gather for in-memory arrays) -> extract patches for the whole
batch at once. Each element of
the resulting iterator is {"patches": uint8 (b, N, p, p, C),
"label": int32 (b,)} for this process's b = batch_size / process_count images
(with config.crop="rrc": {"image": uint8 (b, H, W, C), "boxes": (b, N, 4),
"label"}, cropped and resized on device; config.crop="multicrop" (DINO,
SelfPatch): the same with (b, G + L, 4) boxes, G global and L local crops).
"""
from __future__ import annotations

import dataclasses
import os
import signal
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


class ShuffledRecordIndices(grain.MapDataset):
  """Element j: row j % b of this process's block of global batch j // b, as
  (2,) int64 [stream position, record index] (`ShuffledBatchIndices` row by
  row), so that grain's threads and workers share a batch's images."""

  def __init__(self, batches):
    super().__init__()
    self._batches, self._local = batches, batches._local  # pylint: disable=protected-access

  def __len__(self):
    return sys.maxsize // self._batches._global  # pylint: disable=protected-access

  def __str__(self):
    return f"ShuffledRecordIndices({self._batches})"

  def __getitem__(self, j):
    if isinstance(j, slice):
      return self.slice(j)
    return self._batches[j // self._local][j % self._local]


@dataclasses.dataclass(frozen=True)
class ReadImage(grain.transforms.Map):
  """(stream position, record index) -> {"pos", "image", "label"}: one
  image read, decoded and preprocessed."""
  source: object
  channels: int
  image_size: int

  def map(self, row):
    record = self.source[int(row[1])]
    return {"pos": row[0],
            "image": preprocess_image(record["image"], self.channels,
                                      self.image_size),
            "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class CropBatch(grain.transforms.Map):
  """A batch of `ReadImage` elements -> its training views (`crop_views`)."""
  spec: CropSpec

  def map(self, batch):
    return crop_views(batch["image"], batch["label"], batch["pos"], self.spec)


def per_image(source, image_size):
  """Whether the train pipeline reads image by image (decoded or on-disk
  sources) rather than one vectorised gather per batch (in-memory arrays)."""
  return not (isinstance(source, ArraySource) and not image_size)


def make_train_iterator(config, source, process_index=0, process_count=1):
  """Checkpointable grain iterator of this process's patch batches: block
  `process_index` of `process_count` equal blocks of each global batch (see
  `sharding.process_batch_block`).

  The batches of record indices come from `ShuffledBatchIndices`. Sources
  that decode (files, TFDS, prepared datasets) are read image by image
  (`ShuffledRecordIndices` -> `ReadImage`) by `data.read_threads` threads in
  each of `data.num_workers` processes (all of them on the same batch), then
  batched in order and cut into views (`CropBatch`). A worker holds at most
  (read_threads + prefetch) images in flight: about (read_threads +
  prefetch) x (decoded source image + data.image_size^2 x channels) bytes,
  whatever the batch size. In-memory arrays keep one vectorised gather per
  batch (`ReadAndCrop`)."""
  data = config.data
  image_size = data.get("image_size") or 0
  spec = CropSpec.from_config(config)
  read = grain.ReadOptions(num_threads=data.get("read_threads", 4),
                           prefetch_buffer_size=data.get("prefetch", 4))
  mp = grain.MultiprocessingOptions(num_workers=data.get("num_workers", 0))
  batches = ShuffledBatchIndices(len(source), config.seed, config.batch_size,
                                 process_index, process_count)
  if not per_image(source, image_size):  # in memory: a gather per batch
    ds = batches.map(ReadAndCrop(source, data.channels, image_size, spec))
    it = ds.to_iter_dataset(read)
    if mp.num_workers > 0:
      it = it.mp_prefetch(mp, worker_init_fn=ignore_sigterm)
    return iter(it)
  ds = ShuffledRecordIndices(batches).map(
      ReadImage(source, data.channels, image_size))
  it = ds.to_iter_dataset(read)
  if mp.num_workers > 0:
    it = it.mp_prefetch(mp, worker_init_fn=ignore_sigterm)
  it = it.batch(batches._local, drop_remainder=True).map(CropBatch(spec))  # pylint: disable=protected-access
  return iter(it)


def ignore_sigterm(worker_index, worker_count):
  """grain workers ignore SIGTERM: SLURM and GCE signal every process of a
  job, and the main process must still read its batch and save a checkpoint
  (the workers end with it)."""
  del worker_index, worker_count
  signal.signal(signal.SIGTERM, signal.SIG_IGN)


def eval_batches(source, batch_size, channels, image_size=0, max_images=None,
                 process_index=0, process_count=1, read_threads=None):
  """Yields fixed-size {"image", "label", "mask", "index"} batches of this
  process's share of `source` in order; the last batch is zero-padded.
  Images are decoded in parallel by `read_threads` threads (default: one
  per core, at most 16), at most 2 x read_threads images ahead."""
  n = len(source) if not max_images else min(len(source), max_images)
  local = batch_size // process_count
  num_batches = -(-n // batch_size)
  shares = [np.arange(b * batch_size, min((b + 1) * batch_size, n))[
      process_index * local:(process_index + 1) * local]
            for b in range(num_batches)]
  if isinstance(source, ArraySource) and not image_size:
    get = lambda idx: (source.images[idx], source.labels[idx])  # fast path
  else:
    threads = read_threads or min(16, os.cpu_count() or 1)
    rows = np.concatenate(shares or [np.zeros((0,), np.int64)])
    ds = grain.MapDataset.source(rows).map(_ReadIndex(source, channels,
                                                      image_size))
    items = iter(ds.to_iter_dataset(grain.ReadOptions(
        num_threads=threads, prefetch_buffer_size=2 * threads)))
    def get(idx):
      got = [next(items) for _ in idx]
      return (np.stack([it["image"] for it in got]),
              np.array([it["label"] for it in got], np.int32))
  for idx in shares:
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


@dataclasses.dataclass(frozen=True)
class _ReadIndex(grain.transforms.Map):
  """A record index -> the record, its image preprocessed."""
  source: object
  channels: int
  image_size: int

  def map(self, i):
    record = self.source[int(i)]
    return {"image": preprocess_image(record["image"], self.channels,
                                      self.image_size),
            "label": record["label"]}
