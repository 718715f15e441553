"""Prepared datasets: the deterministic preprocessing done once, on disk.

`prepare` reads a config's dataset (TFDS name, image folder, Fashion-MNIST),
converts each image to `data.channels`, resizes its shorter side and
centre-crops it to `data.image_size` (`views.read_image`, the same code as
the on-the-fly path) and writes, per split, ArrayRecord shards

  DIR/<split>-SSSSS-of-NNNNN.array_record   one record per image
  DIR/<split>-SSSSS-of-NNNNN.done           written after the shard is complete
  DIR/metadata.json                         image size, channels, classes,
                                            counts, source, format

A record is the int32 label (little-endian; -1 when unlabelled) followed by
the image: `raw` (H*W*C uint8, the default: no decode when read, bit-exact),
or the image re-encoded as `png` (lossless), `jpeg` or `webp` (lossy, quality
`JPEG_QUALITY`). Shard s of a split holds images [s*n/S, (s+1)*n/S) in order.
A killed prepare continues where it stopped (shards with a .done marker are
kept), and hosts can split the work (`shard_index`/`num_shards`: host h
writes the shards s with s % num_shards == h).

`PreparedSource` reads a split back for grain: `data.name=prepared`,
`data.path=DIR`.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import sys
import tempfile
import uuid

import numpy as np
from etils import epath

from bagssl_jax import reporting
from bagssl_jax.data.sources import DataError

FORMATS = ("raw", "png", "jpeg", "webp")
DEFAULT_FORMAT = "raw"
JPEG_QUALITY = 90
METADATA = "metadata.json"
FORMAT_TAG = "bagssl_prepared_v1"


def encode(image, label, fmt):
  """One record: int32 label then the image bytes in `fmt`."""
  head = np.int32(label).astype("<i4").tobytes()
  if fmt == "raw":
    return head + np.ascontiguousarray(image, np.uint8).tobytes()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  buf = io.BytesIO()
  if fmt == "png":
    pil.save(buf, "PNG", compress_level=1)
  elif fmt == "jpeg":
    pil.save(buf, "JPEG", quality=JPEG_QUALITY)
  else:
    pil.save(buf, "WEBP", quality=JPEG_QUALITY, method=0)
  return head + buf.getvalue()


def decode(record, fmt, shape):
  """(uint8 image of `shape`, int32 label) of a record."""
  label = np.frombuffer(record, "<i4", count=1)[0]
  if fmt == "raw":
    return np.frombuffer(record, np.uint8, offset=4).reshape(shape), label
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(record[4:])) as im:
    image = np.asarray(im.convert("L" if shape[-1] == 1 else "RGB"))
  return image.reshape(shape), label


def shard_name(split, shard, num):
  return f"{split}-{shard:05d}-of-{num:05d}"


class PreparedSource:
  """A split of a prepared dataset: grain RandomAccessDataSource of
  {"image": uint8 (H, W, C), "label": int32}."""

  def __init__(self, root, split):
    root = epath.Path(root)
    meta = read_metadata(root)
    if split not in meta["splits"]:
      raise DataError(f"prepared dataset {root} has no split '{split}' "
                      f"(it has {', '.join(sorted(meta['splits']))})")
    info = meta["splits"][split]
    num = info["num_shards"]
    names = [shard_name(split, s, num) for s in range(num)]
    missing = [n for n in names if not (root / (n + ".done")).exists()]
    if missing:
      raise DataError(
          f"prepared dataset {root} is incomplete: {len(missing)} of {num} "
          f"shards of split '{split}' missing (first {missing[0]}); run "
          "`python -m bagssl_jax.prepare` again to finish it")
    import grain  # pylint: disable=g-import-not-at-top
    self._ds = grain.sources.ArrayRecordDataSource(
        [os.fspath(root / (n + ".array_record")) for n in names])
    if len(self._ds) != info["count"]:
      raise DataError(f"prepared dataset {root}: split '{split}' has "
                      f"{len(self._ds)} records, metadata says {info['count']}")
    self.format = meta["format"]
    self.image_shape = (meta["image_size"], meta["image_size"],
                        meta["channels"])
    self.num_classes = meta["num_classes"] if info["labelled"] else None
    self.classes = meta.get("classes")
    self.metadata = meta

  def __len__(self):
    return len(self._ds)

  def __getitem__(self, i):
    image, label = decode(self._ds[int(i)], self.format, self.image_shape)
    return {"image": image, "label": label}

  def __getitems__(self, indices):
    return [{"image": im, "label": lb} for im, lb in
            (decode(r, self.format, self.image_shape)
             for r in self._ds.__getitems__([int(i) for i in indices]))]


def read_metadata(root):
  path = epath.Path(root) / METADATA
  if not path.exists():
    raise DataError(f"{root} is not a prepared dataset (no {METADATA}; "
                    "write one with `python -m bagssl_jax.prepare`)")
  try:
    meta = json.loads(path.read_text())
  except ValueError as e:
    raise DataError(f"{path} is not valid JSON: {e}") from None
  if meta.get("format_tag") != FORMAT_TAG:
    raise DataError(f"{path} is not a prepared-dataset metadata file "
                    f"(format_tag {meta.get('format_tag')!r})")
  return meta


# ------------------------------------------------------------ writing ---
def _plan(n, images_per_shard):
  num = max(1, -(-n // images_per_shard))
  return [(s * n // num, (s + 1) * n // num) for s in range(num)]


_WORKER = {}


def _open_source(data_config, split):
  from bagssl_jax.data.sources import load_source  # pylint: disable=g-import-not-at-top
  key = split
  if key not in _WORKER:
    _WORKER[key] = load_source(data_config, split)
  return _WORKER[key]


def _write_shard(job):
  """Writes one shard (in a temporary file, then moved) and its marker."""
  data_config, split, out, name, lo, hi, fmt, image_size = job
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data.views import read_image  # pylint: disable=g-import-not-at-top
  source = _open_source(data_config, split)
  channels = data_config.channels
  out = epath.Path(out)
  local = "://" not in os.fspath(out)
  tmp_dir = os.fspath(out) if local else tempfile.mkdtemp()
  for stale in out.glob(f".{name}.tmp*"):  # left by a killed prepare
    stale.unlink(missing_ok=True)
  tmp = os.path.join(tmp_dir, f".{name}.tmp{uuid.uuid4().hex}")
  # Uncompressed: zstd saves ~17% of raw images but triples the read time.
  writer = array_record_module.ArrayRecordWriter(
      tmp, "group_size:1,uncompressed")
  for i in range(lo, hi):
    image, label = read_image(source, i, channels, image_size)
    if image.shape != (image_size, image_size, channels):
      raise DataError(f"image {i} of split '{split}' is {image.shape}, not "
                      f"{image_size}x{image_size}x{channels}")
    writer.write(encode(image, label, fmt))
  writer.close()
  dst = out / (name + ".array_record")
  if local:
    os.replace(tmp, os.fspath(dst))
  else:
    epath.Path(tmp).copy(dst, overwrite=True)
    os.remove(tmp)
  (out / (name + ".done")).write_text(json.dumps({"count": hi - lo}))
  return hi - lo


def _progress_bar(label):
  """A `reporting.Progress` emitter: a bar on stderr, redrawn in place on a
  terminal."""

  def emit(done, total, rate, eta, final):
    width = 30
    fill = int(width * done / max(total, 1))
    end = "\r" if sys.stderr.isatty() and done < total and not final else "\n"
    sys.stderr.write(f"{label} [{'#' * fill}{'.' * (width - fill)}] "
                     f"{done:,}/{total:,} images, {rate:,.0f}/s, "
                     f"ETA {reporting.hms(eta)}{end}")

  return emit


def prepare(data_config, out, splits, fmt=DEFAULT_FORMAT, workers=1,
            shard_index=0, num_shards=1, images_per_shard=1024, log=print):
  """Writes the prepared dataset; returns the metadata dict. Shards already
  marked done are kept."""
  from bagssl_jax.data import sources  # pylint: disable=g-import-not-at-top
  if fmt not in FORMATS:
    raise DataError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
  if not 0 <= shard_index < num_shards:
    raise DataError(f"--shard_index {shard_index} is not in [0, "
                    f"--num_shards={num_shards})")
  out = epath.Path(out)
  opened = {s: sources.load_source(data_config, s) for s in splits}
  train = opened[splits[0]]
  image_size = data_config.get("image_size") or 0
  if not image_size:
    shape = sources.image_shape(train, data_config)
    if shape[0] != shape[1]:
      raise DataError(f"images of {data_config.name} are {shape[0]}x"
                      f"{shape[1]}: set config.data.image_size (square)")
    image_size = shape[0]
  classes = getattr(train, "classes", None)
  meta = {"format_tag": FORMAT_TAG, "format": fmt, "image_size": image_size,
          "channels": data_config.channels,
          "num_classes": getattr(train, "num_classes", None) or 0,
          "classes": list(classes) if classes else None,
          "source": {"name": data_config.name,
                     "path": data_config.get("path") or ""},
          "splits": {}}
  jobs = []
  for split, src in opened.items():
    plan = _plan(len(src), images_per_shard)
    meta["splits"][split] = {
        "count": len(src), "num_shards": len(plan),
        "labelled": bool(getattr(src, "num_classes", None))}
    for s, (lo, hi) in enumerate(plan):
      name = shard_name(split, s, len(plan))
      if s % num_shards == shard_index and not (out / (name + ".done")).exists():
        jobs.append((data_config, split, os.fspath(out), name, lo, hi, fmt,
                     image_size))
  if (out / METADATA).exists():
    old = json.loads((out / METADATA).read_text())
    if old != meta:
      diff = sorted(k for k in meta if old.get(k) != meta[k])
      raise DataError(f"{out} holds a prepared dataset that differs in "
                      f"{', '.join(diff)}: choose another --out or delete it")
  out.mkdir(parents=True, exist_ok=True)
  tmp = out / f".{METADATA}.tmp{uuid.uuid4().hex}"  # hosts write it alike
  tmp.write_text(json.dumps(meta, indent=1))
  tmp.replace(out / METADATA)
  total = sum(j[5] - j[4] for j in jobs)
  log(f"prepare: {len(jobs)} shards ({total:,} images) to write to {out} as "
      f"{fmt}, {image_size}x{image_size}x{data_config.channels}, "
      f"{workers} worker(s)")
  progress = reporting.Progress(total, _progress_bar("prepare"), every=2.0)
  if workers <= 1:
    for job in jobs:
      progress.update(_write_shard(job))
  else:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
      for n in pool.imap_unordered(_write_shard, jobs):
        progress.update(n)
  progress.update(0, final=True)
  return meta
