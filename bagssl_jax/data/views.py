"""Reading an image as the model sees it, and cutting its training views.

`preprocess_image` converts channels and resizes the shorter side to
`image_size` with a centre crop (variable-size datasets), in one PIL pass
that computes only the cropped square; `read_image` does it straight from
the source's file where the source can (image folders: JPEGs decoded at
reduced size by libjpeg's DCT scaling when at least twice the target).
`crop_views` cuts a batch's training views: fixed-scale patches at positions
hashed from (seed, stream index), or RandomResizedCrop / multi-crop boxes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data.sources import ArraySource


def crop_box(h, w, image_size):
  """The centre square of an (h, w) image whose shorter side is resized to
  `image_size`, as (left, top, right, bottom) in the image's pixels."""
  scale = image_size / min(h, w)
  nh = max(image_size, round(h * scale))
  nw = max(image_size, round(w * scale))
  top, left = (nh - image_size) // 2, (nw - image_size) // 2
  sy, sx = h / nh, w / nw
  return (left * sx, top * sy, (left + image_size) * sx,
          (top + image_size) * sy)


def resize_crop(pil, image_size, size=None):
  """PIL image -> (image_size, image_size) centre crop of its shorter-side
  resize, computed in one pass. `size`: the (w, h) the crop is planned on
  when `pil` was decoded at reduced size (JPEG draft)."""
  w, h = size or pil.size
  left, top, right, bottom = crop_box(h, w, image_size)
  fx, fy = pil.size[0] / w, pil.size[1] / h
  return pil.resize((image_size, image_size), Image.BILINEAR,
                    box=(left * fx, top * fy, right * fx, bottom * fy))


def preprocess_image(image, channels, image_size=0):
  """uint8 (H, W[, C]) -> (H', W', channels): channels converted (RGBA drops
  alpha, grey <-> RGB) and, with `image_size`, resized and centre-cropped."""
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
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    image = np.asarray(resize_crop(pil, image_size)).reshape(
        image_size, image_size, channels)
  return image


def read_image(source, index, channels, image_size=0):
  """(uint8 image preprocessed, int32 label) of record `index`: decoded at
  the size it is needed where the source can (`read_preprocessed`)."""
  if hasattr(source, "read_preprocessed"):
    return source.read_preprocessed(int(index), channels, image_size)
  record = source[int(index)]
  return (preprocess_image(record["image"], channels, image_size),
          np.int32(record["label"]))


def read_batch(source, record_indices, channels, image_size=0):
  """uint8 images (b, H, W, C) and int32 labels (b,) of `record_indices`:
  one fancy-indexing gather for in-memory sources, else record by record."""
  if isinstance(source, ArraySource) and not image_size:
    images = source.images[record_indices]
    if images.ndim == 3:
      images = images[..., None]
    if images.shape[-1] != channels:
      images = np.stack([preprocess_image(im, channels) for im in images])
    return images, source.labels[record_indices].astype(np.int32)
  read = [read_image(source, i, channels, image_size) for i in record_indices]
  return (np.stack([im for im, _ in read]),
          np.array([lb for _, lb in read], np.int32))


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


def crop_boxes(spec, stream_index, hw):
  """(b, N, 4) RandomResizedCrop boxes ("rrc") or DINO's global then local
  boxes (b, G + L, 4) ("multicrop") on images of size `hw`."""
  if spec.crop == "rrc":
    return patches_lib.random_resized_crops(
        spec.seed, stream_index, spec.num_patches, hw, spec.rrc_scale,
        spec.rrc_ratio)
  return np.concatenate([patches_lib.random_resized_crops(
      spec.seed, stream_index, n, hw, tuple(scale), spec.rrc_ratio,
      salt=salt) for salt, (n, scale) in enumerate(spec.multicrop, 1)],
                        axis=1)


def crop_views(images, labels, stream_index, spec):
  """The training element of a batch of images: `num_patches` fixed-size
  patches per image at positions hashed from (seed, stream index)
  ("patches"); or the images with their boxes (`crop_boxes`), cut and
  resized on the device."""
  hw = images.shape[1:3]
  if spec.crop == "patches":
    pos = patches_lib.random_positions(spec.seed, stream_index,
                                       spec.num_patches, hw, spec.patch_size)
    return {"patches": patches_lib.extract_patches(images, pos,
                                                   spec.patch_size),
            "label": labels}
  return {"image": images, "boxes": crop_boxes(spec, stream_index, hw),
          "label": labels}
