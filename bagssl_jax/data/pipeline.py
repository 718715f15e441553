"""grain pipelines: the training patch stream and the eval image batches.

Train: batches of (stream position, record index) from a per-epoch
permutation, this process's block of each global batch -> read and cut into
views where the images are decoded (data/batches.py: image by image in
threads / worker processes for sources that decode, one gather for in-memory
arrays), each batch handed over whole. Each element of the resulting
iterator is {"patches": uint8 (b, N, p, p, C),
"label": int32 (b,)} for this process's b = batch_size / process_count images
(with config.crop="rrc": {"image": uint8 (b, H, W, C), "boxes": (b, N, 4),
"label"}, cropped and resized on device; config.crop="multicrop" (DINO,
SelfPatch): the same with (b, G + L, 4) boxes, G global and L local crops).
"""
from __future__ import annotations

import dataclasses
import os
import sys

import grain
import numpy as np
from absl import flags

from bagssl_jax.data import batches as batches_lib
from bagssl_jax.data.batches import ReadAndCrop
from bagssl_jax.data.sources import ArraySource
from bagssl_jax.data.views import (CropSpec, crop_boxes, crop_views,
                                   preprocess_image, read_batch, read_image)

__all__ = ["CropSpec", "ReadAndCrop", "ShuffledBatchIndices", "crop_boxes",
           "crop_views", "eval_batches", "make_train_iterator",
           "preprocess_image", "read_batch", "read_image"]


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
  """Checkpointable grain iterator of this process's training batches: block
  `process_index` of `process_count` equal blocks of each global batch (see
  `sharding.process_batch_block`).

  Element k of `ShuffledBatchIndices` -> `ReadAndCrop` (data/batches.py):
  the batch's images are read and cut into views where they are decoded, by
  `data.read_threads` threads (each on its own batch) in each of
  `data.num_workers` worker processes; a worker hands each finished batch to
  the main process as one shared-memory block. A worker holds `read_threads`
  decoded images and (read_threads + prefetch) batches of views in flight.
  The stream is a pure function of (seed, position): the same batches for
  any number of workers, threads or processes."""
  data = config.data
  spec = CropSpec.from_config(config)
  read = grain.ReadOptions(num_threads=data.get("read_threads", 4),
                           prefetch_buffer_size=data.get("prefetch", 4))
  workers = data.get("num_workers", 0)
  batches = ShuffledBatchIndices(len(source), config.seed, config.batch_size,
                                 process_index, process_count)
  image_size = data.get("image_size") or 0
  ds = batches.map(ReadAndCrop(source, data.channels, image_size, spec))
  it = ds.to_iter_dataset(read)
  if workers > 0:
    if not flags.FLAGS.is_parsed():  # grain reads its flags (notebooks)
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers),
                        worker_init_fn=batches_lib.worker_init)
  decodes = not (isinstance(source, ArraySource) and not image_size)
  return batches_lib.TrainIterator(iter(it), workers, decodes)


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
    image, label = read_image(self.source, i, self.channels, self.image_size)
    return {"image": image, "label": label}
