"""Random-access image sources: Fashion-MNIST idx files, TFDS ArrayRecord,
users' image folders (ROOT/<split>/<class>/*.png|jpg, or unlabelled images),
prepared datasets (data/prepared.py).

A source is a grain RandomAccessDataSource (`__len__`, `__getitem__`) whose
records are {"image": uint8 (H, W, C), "label": int32}; `image_shape` is the
(H, W, C) after `Preprocess` when all images share it, and `num_classes` is
the number of labels.
"""
from __future__ import annotations

import dataclasses
import gzip
import math
import os

import numpy as np
from absl import logging

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataError(ValueError):
  """A dataset that cannot be found or read; its message is one line."""


@dataclasses.dataclass
class ArraySource:
  """In-memory images (N, H, W, C) uint8 and labels (N,)."""
  images: np.ndarray
  labels: np.ndarray
  num_classes: int

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": self.labels[i]}

  @property
  def image_shape(self):
    return self.images.shape[1:]


class TfdsSource:
  """A `tfds.data_source` (ArrayRecord) restricted to image and label."""

  def __init__(self, ds, num_classes, image_shape=None, image_key="image",
               label_key="label"):
    self._ds, self.num_classes = ds, num_classes
    self.image_shape = image_shape  # None when images differ in size
    self._image_key, self._label_key = image_key, label_key

  def __len__(self):
    return len(self._ds)

  def __getitem__(self, i):
    record = self._ds[i]
    return {"image": np.asarray(record[self._image_key]),
            "label": np.int32(record[self._label_key] if self._label_key
                              else -1)}


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif",
                    ".tiff")


class ImageFolderSource:
  """ROOT/<split>/<class>/<image> (torchvision's ImageFolder convention), or
  unlabelled images: ROOT/<split>/*.jpg (or ROOT/*.jpg and ROOT/<sub>/*.jpg
  for the train split when ROOT has no <split> folder), label -1.

  Classes are the sorted sub-folder names of ROOT/train (shared by every
  split); images are decoded with PIL when read, as RGB or L as asked, so
  files of any size and mode work (set data.image_size when sizes differ;
  `probe_shape` finds the one size of a folder whose images share it).
  """

  def __init__(self, root, split, channels, classes=None, bad_images="stop"):
    if "://" in os.fspath(root):
      raise DataError(
          f"image folder {root}: image folders are read from a local or "
          "mounted filesystem; for a bucket, prepare it once (python -m "
          "bagssl_jax.prepare) or mount it (gcsfuse), or use TFDS ArrayRecord")
    folder = os.path.join(root, split)
    flat_root = not os.path.isdir(folder) and split == "train"
    if flat_root and os.path.isdir(root):
      folder = root
    elif not os.path.isdir(folder):
      raise DataError(f"image folder {folder} does not exist (expected "
                      f"{root}/{split}/<class>/<images>)")
    self.classes = [] if flat_root else (classes or sorted(
        d for d in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, d))))
    self.files, labels = [], []
    for label, name in enumerate(self.classes):
      class_dir = os.path.join(folder, name)
      if not os.path.isdir(class_dir):
        continue
      for f in sorted(os.listdir(class_dir)):
        if f.lower().endswith(IMAGE_EXTENSIONS):
          self.files.append(os.path.join(class_dir, f))
          labels.append(label)
    if not self.files:  # unlabelled: the images under `folder`
      self.classes = []
      for d, subdirs, names in sorted(os.walk(folder)):
        subdirs.sort()
        self.files += [os.path.join(d, f) for f in sorted(names)
                       if f.lower().endswith(IMAGE_EXTENSIONS)]
      labels = [-1] * len(self.files)
      if not self.files:
        raise DataError(f"image folder {folder} has no images (expected "
                        f"{folder}/<class>/*.png|jpg or {folder}/*.png|jpg)")
      logging.info("image folder %s: %d unlabelled images (no class "
                   "sub-folders)", folder, len(self.files))
    self.labels = np.asarray(labels, np.int32)
    self.num_classes, self.channels = len(self.classes), channels
    self.image_shape = None  # sizes may differ: data.image_size decides
    self.bad_images, self.skipped = bad_images, set()
    self._probed, self.folder = False, folder

  def probe_shape(self):
    """The (H, W, C) all images share (read from the file headers), or None
    when sizes differ."""
    if not self._probed:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      sizes = set()
      for path in self.files:
        try:
          with Image.open(path) as im:
            sizes.add(im.size)
        except (OSError, ValueError, SyntaxError):
          continue  # reported when read
        if len(sizes) > 1:
          break
      if len(sizes) == 1:
        w, h = sizes.pop()
        self.image_shape = (h, w, self.channels)
      self._probed = True
    return self.image_shape

  def __len__(self):
    return len(self.files)

  def __getitem__(self, i):
    image, label = self.read_preprocessed(i, self.channels, 0)
    return {"image": image, "label": label}

  def read_preprocessed(self, i, channels, image_size=0):
    """(uint8 (H, W, channels), label) of image i, resized and centre-cropped
    to `image_size` in one pass (`views.resize_crop`); a JPEG at least twice
    that size is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling).
    With bad_images="skip", the next decodable image takes its place."""
    for j in range(len(self.files)):
      k = (int(i) + j) % len(self.files)
      try:
        return self._read(k, channels, image_size)
      except DataError as e:
        if self.bad_images != "skip":
          raise DataError(f"{e} (set config.data.bad_images=skip to skip "
                          "such files)") from None
        if k not in self.skipped:
          self.skipped.add(k)
          logging.warning("skipping undecodable image %s (%d skipped so "
                          "far in this process)", self.files[k],
                          len(self.skipped))
    raise DataError(f"no image under {os.path.dirname(os.path.dirname(self.files[0]))} "
                    "can be decoded")

  def _read(self, i, channels, image_size):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    from bagssl_jax.data import views  # pylint: disable=g-import-not-at-top
    path, mode = self.files[i], "L" if channels == 1 else "RGB"
    try:
      with Image.open(path) as im:
        size = im.size
        if image_size:  # JPEG: the smallest DCT scale still >= the resize
          scale = image_size / min(size)
          im.draft(mode, (math.ceil(size[0] * scale),
                          math.ceil(size[1] * scale)))
        im = im if im.mode == mode else im.convert(mode)
        if image_size and size != (image_size, image_size):
          im = views.resize_crop(im, image_size, size)
        image = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:
      raise DataError(f"cannot decode image {path}: {e}") from None
    return (image.reshape(image.shape[:2] + (channels,)),
            np.int32(self.labels[i]))


# An eval split's other names: ImageNet is distributed as train/ and val/.
SPLIT_ALIASES = {"validation": ("val",), "val": ("validation",),
                 "test": ("val", "validation")}


def image_folder(root, split, channels, bad_images="stop"):
  if not root:
    raise DataError("data.name 'image_folder' needs data.path=ROOT "
                    "(ROOT/train/<class>/*.png|jpg, ROOT/test/<class>/...)")
  if not os.path.isdir(os.path.join(root, split)):
    for alias in SPLIT_ALIASES.get(split, ()):
      if os.path.isdir(os.path.join(root, alias)):
        logging.info("image folder %s: split '%s' read from %s/ (no %s/)",
                     root, split, alias, split)
        split = alias
        break
  train_classes, train_dir = None, os.path.join(root, "train")
  if split != "train" and os.path.isdir(train_dir):
    train_classes = sorted(d for d in os.listdir(train_dir)
                           if os.path.isdir(os.path.join(train_dir, d)))
  return ImageFolderSource(root, split, channels, train_classes, bad_images)


def _read_idx(path):
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
  array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(dims)):
    raise DataError(f"idx file {path} is truncated: header says {tuple(dims)}")
  return array.reshape(dims)


def _find_idx(folder, stem):
  for name in (stem + ".gz", stem):
    if os.path.exists(os.path.join(folder, name)):
      return os.path.join(folder, name)
  return None


def fashion_mnist_idx(folder, split):
  """Fashion-MNIST from idx files (Debian's `dataset-fashion-mnist`), or None."""
  if split not in _IDX_FILES:
    raise DataError(f"data.split '{split}' unknown for Fashion-MNIST idx files "
                    "(use 'train' or 'test')")
  paths = [_find_idx(folder, stem) for stem in _IDX_FILES[split]]
  if None in paths:
    return None
  images, labels = (_read_idx(p) for p in paths)
  return ArraySource(images[..., None], labels.astype(np.int32), 10)


def tfds_source(name, split, data_dir=None):
  """A TFDS dataset prepared as ArrayRecord, read with `tfds.data_source`."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    ds = tfds.data_source(name, split=split, data_dir=data_dir or None,
                          download=False)
    features = tfds.builder(name, data_dir=data_dir or None).info.features
    num_classes = (features["label"].num_classes if "label" in features
                   else None)  # None: no labels (training only)
    shape = tuple(features["image"].shape)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f"config.data.name: unknown dataset '{name}' (use "
                    "fashion_mnist, image_folder or a TFDS dataset name)"
                    ) from None
  except Exception as e:  # pylint: disable=broad-except
    where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(
        f"TFDS dataset '{name}' split '{split}' is not prepared as ArrayRecord "
        f"under {where} ({first[:200]}); build it with `tfds build {name} "
        "--file_format=array_record` or set data.path") from None
  return TfdsSource(ds, num_classes, shape if None not in shape else None,
                    label_key="label" if num_classes else None)


def no_labels_error(source, split, name, hint=""):
  """The one-line error of an eval that needs labels `source` lacks."""
  folder = getattr(source, "folder", None)
  where = f" ({folder} has no class sub-folders)" if folder else ""
  return DataError(f"split '{split}' of {name} has no labels{where}, which "
                   f"eval needs{hint}")


def image_shape(source, data_config):
  """(H, W, C) of the images the model sees after `Preprocess`."""
  if data_config.get("image_size"):
    return (data_config.image_size, data_config.image_size,
            data_config.channels)
  if source.image_shape is None and hasattr(source, "probe_shape"):
    if source.probe_shape() is not None:
      logging.info("%s: all images are %dx%d: data.image_size not needed",
                   data_config.name, *source.image_shape[:2])
  if source.image_shape is None:
    raise DataError(f"images of {data_config.name} differ in size: set "
                    "config.data.image_size (resize + centre crop)")
  return tuple(source.image_shape[:2]) + (data_config.channels,)


def load_source(data_config, split):
  """The source of `data.name` for `split` ('train' or 'test' or a TFDS split)."""
  name, path = data_config.name, data_config.get("path") or ""
  if name == "prepared":
    if not path:
      raise DataError("data.name 'prepared' needs data.path=DIR (written by "
                      "`python -m bagssl_jax.prepare`)")
    from bagssl_jax.data import prepared  # pylint: disable=g-import-not-at-top
    return prepared.PreparedSource(path, split)
  if name == "image_folder":
    return image_folder(path, split, data_config.channels,
                        data_config.get("bad_images", "stop"))
  if name == "fashion_mnist":
    folder = path or DEBIAN_FASHION_MNIST
    source = fashion_mnist_idx(folder, split) if os.path.isdir(folder) else None
    if source is not None:
      return source
    try:
      return tfds_source("fashion_mnist", split, path or None)
    except DataError:
      raise DataError(
          f"Fashion-MNIST not found: no idx files in {folder} (install Debian's "
          "`dataset-fashion-mnist` or set data.path) and no TFDS "
          "'fashion_mnist' ArrayRecord (`tfds build fashion_mnist "
          "--file_format=array_record`)") from None
  return tfds_source(name, split, path or None)
