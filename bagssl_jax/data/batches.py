"""Training batches built where the images are decoded.

A grain element of the train pipeline is one whole batch. `ReadAndCrop`
reads the batch's images one by one and cuts each image's training views as
soon as it is decoded (fixed-scale patches at their hashed positions, or the
image with its RandomResizedCrop / multi-crop boxes), writing them into the
batch's arrays, so a decoded image lives only until its views are cut. The
arrays are views of one contiguous block: from a grain worker process, grain
copies the block into one shared-memory segment and sends its name; the
main process maps it and `unpack`s the named arrays without a copy or any
per-image pickling. The main process only receives batches and places
them on the devices.

`TrainIterator` wraps grain's iterator: it unpacks blocks, remembers which
worker delivered each batch, and turns a worker that died (the OOM killer's
SIGKILL) into one `DataError` naming it.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal

import grain
import numpy as np

from bagssl_jax.data import patches as patches_lib
from bagssl_jax.data import rrc, views as views_lib
from bagssl_jax.data.sources import ArraySource, DataError

_ALIGN = 64  # bytes: each array of a block starts on a cache line
_WORKER = None  # (index, count) inside a grain worker process


def worker_init(index, count):
  """grain's `worker_init_fn`: marks the process as worker `index` (batches
  go to shared memory) and ignores SIGTERM: SLURM and GCE signal every
  process of a job, and the main process must still read its batch and save
  a checkpoint (the workers end with it)."""
  global _WORKER
  _WORKER = (index, count)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ---------------------------------------------------------------- blocks ---
def allocate(fields):
  """{name: (shape, dtype)} -> (buffer, {name: array view}, layout): one
  contiguous uint8 buffer."""
  layout, offset = [], 0
  for name, (shape, dtype) in fields.items():
    dtype = np.dtype(dtype)
    layout.append((name, dtype.str, tuple(int(s) for s in shape), offset))
    offset += -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN
  size = max(offset, _ALIGN)
  buf = np.empty((size,), np.uint8)
  return buf, _views(buf, layout), tuple(layout)


def _views(buf, layout):
  return {name: buf[off:off + int(np.prod(shape)) * np.dtype(dt).itemsize]
          .view(dt).reshape(shape) for name, dt, shape, off in layout}


def as_element(buf, layout):
  """The grain element of a filled block: in a worker the block itself,
  which grain copies into one shared-memory segment as it hands it over
  (a block made in shared memory earlier would leak when a stopping worker
  drops the batches it still holds); in the main process the named arrays."""
  if _WORKER:
    return {"block": buf, "layout": layout,
            "worker": (_WORKER[0], os.getpid())}
  return _views(buf, layout)


def to_block(element):
  """Copies a dict of arrays into one block (in-memory sources, whose
  batches are cut by one vectorised gather)."""
  if not _WORKER:
    return element
  buf, views, layout = allocate({k: (v.shape, v.dtype)
                                 for k, v in element.items()})
  for k, v in element.items():
    views[k][...] = v
  return as_element(buf, layout)


def unpack(element):
  """A block element -> its named arrays (views of the mapped block)."""
  if "block" not in element:
    return element
  return _views(element["block"], element["layout"])


# ---------------------------------------------------------------- batches ---
@dataclasses.dataclass(frozen=True)
class ReadAndCrop(grain.transforms.Map):
  """A batch of (stream index, record index) rows -> its training element:
  {"patches": (b, N, p, p, C), "label"} or {"image", "boxes", "label"}.

  In-memory arrays: one vectorised gather and cut. Sources that decode:
  image by image, each cut as soon as it is read, into the batch's block."""
  source: object
  channels: int
  image_size: int
  spec: views_lib.CropSpec

  def map(self, rows):
    if isinstance(self.source, ArraySource) and not self.image_size:
      images, labels = views_lib.read_batch(self.source, rows[:, 1],
                                            self.channels)
      return to_block(views_lib.crop_views(images, labels, rows[:, 0],
                                           self.spec))
    return self._per_image(rows)

  def _per_image(self, rows):
    spec, b = self.spec, len(rows)
    boxes_on_original = spec.crop == "rrc" and self.image_size
    arrays = layout = buf = where = None
    for j, (stream, record) in enumerate(rows):
      image, label = views_lib.read_image(
          self.source, record, self.channels,
          0 if boxes_on_original else self.image_size)
      if boxes_on_original:  # torchvision's RRC: boxes on the decoded image
        cut = rrc.view_on_original(image, stream, spec, self.image_size)
      else:
        if where is None:  # positions / boxes of the whole batch at once
          first, where = image.shape, _batch_positions(spec, rows[:, 0],
                                                       image.shape[:2])
        if image.shape != first:
          raise DataError(
              f"record {int(record)} is {'x'.join(map(str, image.shape))}, "
              f"the batch's first image {'x'.join(map(str, first))}: set "
              "config.data.image_size (resize + centre crop)")
        cut = _cut(image, where, j, spec)
      if buf is None:
        fields = {k: ((b,) + v.shape, v.dtype) for k, v in cut.items()}
        fields["label"] = ((b,), np.int32)
        buf, arrays, layout = allocate(fields)
      for k, v in cut.items():
        arrays[k][j] = v
      arrays["label"][j] = label
    return as_element(buf, layout)


def _batch_positions(spec, stream_index, hw):
  """Patch corners (b, N, 2) or boxes (b, N, 4) of a batch on images of
  size `hw` (the same functions as the vectorised path)."""
  if spec.crop == "patches":
    return patches_lib.random_positions(spec.seed, stream_index,
                                        spec.num_patches, hw, spec.patch_size)
  return views_lib.crop_boxes(spec, stream_index, hw)


def _cut(image, where, j, spec):
  """One image's views: its patches, or the image with its boxes."""
  if spec.crop != "patches":
    return {"image": image, "boxes": where[j]}
  p = spec.patch_size
  return {"patches": np.stack([image[y:y + p, x:x + p] for y, x in where[j]])
          if len(where[j]) else np.zeros((0, p, p, image.shape[-1]),
                                         image.dtype)}


# -------------------------------------------------------------- iterator ---
_DIED = re.compile(r"terminated unexpectedly with exit code (-?\d+)")


STATE_VERSION = 2  # 1 (untagged): decoded sources went image by image


class TrainIterator(grain.DatasetIterator):
  """grain's train iterator, unpacked (`unpack`); its state is grain's,
  tagged with `STATE_VERSION`.

  A worker process that dies (killed from outside, e.g. by the OOM killer)
  stops iteration with one `DataError` naming the worker. An untagged state
  of a source that decodes counted images, not batches: it is refused (one
  `DataError`), never read as a wrong position."""

  def __init__(self, parent, num_workers, decodes=True):
    super().__init__(parent)
    self._num_workers, self._decodes = num_workers, decodes
    self._last = None  # (index, pid) of the worker of the last batch
    self._pids = {}

  def __next__(self):
    try:
      element = next(self._parent)
    except RuntimeError as e:
      died = _DIED.search(str(e))
      if not died:
        raise
      raise DataError(self._died_message(int(died.group(1)))) from None
    if "worker" in element:
      self._last = element["worker"]
      self._pids[self._last[0]] = self._last[1]
    return unpack(element)

  def get_state(self):
    return {"bagssl_batches": STATE_VERSION, "grain": self._parent.get_state()}

  def set_state(self, state):
    if "bagssl_batches" in state:
      state = state["grain"]
    elif self._decodes:
      raise DataError(
          "the checkpoint's data position was saved by the image-by-image "
          "train pipeline of bagssl_jax before 78a3dad; resume it with that "
          "version, or start a new workdir")
    self._parent.set_state(state)

  def _died_message(self, code):
    n = self._num_workers
    index = (self._last[0] + 1) % n if self._last else None
    dead = [i for i, pid in self._pids.items() if not _alive(pid)]
    if dead:
      index = dead[0]
    who = (f"data worker {index} of {n}" if index is not None
           else f"a data worker (of {n})")
    pid = self._pids.get(index)
    who += f" (pid {pid})" if pid else ""
    how = (f"was killed by signal {-code} ({signal.Signals(-code).name}"
           f"{', the OOM killer?' if code == -signal.SIGKILL else ''})"
           if code < 0 and -code in signal.valid_signals()
           else f"exited with code {code}")
    return (f"{who} {how}; try fewer config.data.read_threads, a smaller "
            "config.data.prefetch or fewer config.data.num_workers, then "
            "rerun the same command to resume from the last checkpoint")


def _alive(pid):
  """Whether `pid` runs (a killed child not yet reaped is a zombie)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False
