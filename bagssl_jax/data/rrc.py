"""RandomResizedCrop from the original image, for variable-size datasets.

torchvision's RandomResizedCrop draws its box on the decoded image, before
any resize or centre crop. The device wants equal-size images, so each image
is resized whole (no crop) to `image_size` x `image_size` and its boxes, drawn
on the original height and width, are scaled into that square: cropping the
square at the scaled box and resizing to `input_size` (augment.crop_and_resize)
shows the same content as cropping the original, at up to `image_size` px of
resolution per side.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from bagssl_jax.data import patches as patches_lib


def squash(image, size):
  """uint8 (h, w, C) -> (size, size, C), resized whole (bilinear)."""
  if image.shape[:2] == (size, size):
    return image
  c = image.shape[-1]
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  return np.asarray(pil.resize((size, size), Image.BILINEAR)).reshape(
      size, size, c)


def view_on_original(image, stream, spec, image_size):
  """The "rrc" views of one decoded image (channels converted only): the
  image squashed to image_size^2 and its boxes (N, 4), drawn on the
  original size and scaled into the square."""
  h, w = image.shape[:2]
  box = patches_lib.random_resized_crops(
      spec.seed, np.array([stream]), spec.num_patches, (h, w),
      spec.rrc_scale, spec.rrc_ratio)[0]
  box = box * np.array([image_size / h, image_size / w] * 2, np.float32)
  return {"image": squash(image, image_size), "boxes": box.astype(np.float32)}
