"""grain pipelines: the training patch stream and the eval image batches.

Train: source -> shuffle (per-epoch reseeded) -> repeat -> tag stream index
-> this process's block of every global batch -> preprocess -> batch ->
extract patches. Each
element of the resulting iterator is {"patches": uint8 (b, N, p, p, C),
"label": int32 (b,)} for this process's b = batch_size / process_count images
(with config.crop="rrc": {"image": uint8 (b, H, W, C), "boxes": (b, N, 4),
"label"}, cropped and resized on device; config.crop="multicrop" (DINO,
SelfPatch): the same with (b, G + L, 4) boxes, G global and L local crops).
"""
from __future__ import annotations

import dataclasses

import grain
import numpy as np
from PIL import Image

from bagssl_jax.data import patches as patches_lib
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


@dataclasses.dataclass(frozen=True)
class ExtractPatches(grain.transforms.Map):
  """Batch of images -> `num_patches` random fixed-size patches per image."""
  seed: int
  num_patches: int
  patch_size: int

  def map(self, batch):
    images = batch["image"]
    pos = patches_lib.random_positions(self.seed, batch["index"],
                                       self.num_patches, images.shape[1:3],
                                       self.patch_size)
    return {"patches": patches_lib.extract_patches(images, pos,
                                                   self.patch_size),
            "label": batch["label"]}


@dataclasses.dataclass(frozen=True)
class RandomResizedCropBoxes(grain.transforms.Map):
  """Batch of images -> the images plus `num_crops` RandomResizedCrop boxes
  per image (the multi-scale baseline; crops are resized on device)."""
  seed: int
  num_crops: int
  scale: tuple
  ratio: tuple

  def map(self, batch):
    images = batch["image"]
    boxes = patches_lib.random_resized_crops(
        self.seed, batch["index"], self.num_crops, images.shape[1:3],
        tuple(self.scale), tuple(self.ratio))
    return {"image": images, "boxes": boxes, "label": batch["label"]}


@dataclasses.dataclass(frozen=True)
class MultiCropBoxes(grain.transforms.Map):
  """DINO's multi-crop: the images plus `num_global` RandomResizedCrop boxes
  at `global_scale` and `num_local` at `local_scale` per image, (b, G + L, 4)
  (cut and resized on device, dino.multicrop_views)."""
  seed: int
  num_global: int
  num_local: int
  global_scale: tuple
  local_scale: tuple
  ratio: tuple

  def map(self, batch):
    images, index = batch["image"], batch["index"]
    boxes = [patches_lib.random_resized_crops(
        self.seed, index, n, images.shape[1:3], tuple(scale),
        tuple(self.ratio), salt=salt) for n, scale, salt in (
            (self.num_global, self.global_scale, 1),
            (self.num_local, self.local_scale, 2))]
    return {"image": images, "boxes": np.concatenate(boxes, axis=1),
            "label": batch["label"]}


def _tag_index(index, element):
  return {**element, "index": np.int64(index)}


class BatchBlock(grain.MapDataset):
  """Process `block`'s rows of every global batch of `global_batch` elements:
  stream positions k * B + block * b + [0, b) of global batch k (b = B /
  num_blocks). The processes' local batches, concatenated in block order (as
  `jax.make_array_from_process_local_data` does), are the 1-process batch,
  row for row, whatever the number of processes."""

  def __init__(self, parent, block, num_blocks, global_batch):
    super().__init__(parent)
    self._block, self._local = block, global_batch // num_blocks
    self._global = global_batch
    self._length = len(parent) // global_batch * self._local

  def __len__(self):
    return self._length

  def _parent_index(self, index):
    k, r = divmod(index, self._local)
    return k * self._global + self._block * self._local + r

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._parent_index(index)]

  def _getitems(self, indices):
    return self._parent._getitems([self._parent_index(i) for i in indices])  # pylint: disable=protected-access


def make_train_iterator(config, source, process_index=0, process_count=1):
  """Checkpointable grain iterator of this process's patch batches: block
  `process_index` of `process_count` equal blocks of each global batch (see
  `sharding.process_batch_block`)."""
  data = config.data
  local_batch = config.batch_size // process_count
  ds = grain.MapDataset.source(source).seed(config.seed).shuffle().repeat()
  ds = ds.map_with_index(_tag_index)  # global stream position
  ds = BatchBlock(ds, process_index, process_count, config.batch_size)
  ds = ds.map(Preprocess(data.channels, data.get("image_size") or 0))
  ds = ds.batch(local_batch, drop_remainder=True)
  if config.get("crop", "patches") == "multicrop":
    mc = config.multicrop
    ds = ds.map(MultiCropBoxes(config.seed, mc.num_global, mc.num_local,
                               tuple(mc.global_scale), tuple(mc.local_scale),
                               tuple(config.rrc_ratio)))
  elif config.get("crop", "patches") == "rrc":
    ds = ds.map(RandomResizedCropBoxes(config.seed, config.num_patches,
                                       tuple(config.rrc_scale),
                                       tuple(config.rrc_ratio)))
  else:
    ds = ds.map(ExtractPatches(config.seed, config.num_patches,
                               config.patch_size))
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

