"""The `imagenet_pipeline` section: can one host keep an H100 fed?

Builds an ImageNet-like JPEG folder (crops of scikit-learn's sample photos at
ImageNet's size mix, re-encoded to ~110 KB per file), then times the real
train pipeline of configs/imagenet_vicreg.py on one core (the process is
pinned to one CPU, 1 read thread, no worker processes): on the fly (decode,
resize, centre crop every epoch) and from a dataset prepared once
(`bagssl_jax.prepare`) in each stored format. The config's train FLOPs per
image come from XLA's cost analysis of its train step; an H100 SXM at 40%
MFU consumes `H100_BF16_PEAK * MFU / flops` images/s, and cores per GPU =
that / images per second per core. A pipeline worker's peak memory is
measured with the config's batch (worker RSS, 1 process, its read threads
and prefetch as configured).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import time

import numpy as np

H100_BF16_PEAK = 989.4e12  # H100 SXM dense bf16 tensor-core FLOP/s
MFU = 0.4
# ImageNet-1k train's common sizes (w, h) and their rough shares: most images
# are 500 px on the long side, 375 or 333 on the other, a few square or larger.
SIZE_MIX = (((500, 375), 0.55), ((375, 500), 0.15), ((500, 333), 0.15),
            ((500, 500), 0.10), ((800, 600), 0.05))
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs", "imagenet_vicreg.py")
TARGET_KB = 110  # ImageNet-1k train: ~140 GB / 1.28M files


def imagenet_like_folder(root, n, seed=0):
  """n JPEGs: random crops of the sample photos resized to SIZE_MIX sizes,
  quality picked per file to land near TARGET_KB. Returns the mean KB."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  photos = [Image.fromarray(im) for im in load_sample_images().images]
  rng = np.random.default_rng(seed)
  sizes, shares = zip(*SIZE_MIX)
  total = 0
  os.makedirs(root, exist_ok=True)
  for i in range(n):
    photo = photos[i % len(photos)]
    w, h = sizes[rng.choice(len(sizes), p=shares)]
    scale = rng.uniform(0.6, 1.0)  # crop a part of the photo, then resize
    cw = int(min(photo.width, photo.height * w / h) * scale)
    ch = int(cw * h / w)
    x0 = rng.integers(0, photo.width - cw + 1)
    y0 = rng.integers(0, photo.height - ch + 1)
    im = photo.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    if rng.random() < 0.5:
      im = im.transpose(Image.FLIP_LEFT_RIGHT)
    best = None
    for q in (80, 88, 93, 96, 98):
      buf = io.BytesIO()
      im.save(buf, "JPEG", quality=q)
      if best is None or (abs(buf.tell() / 1024 - TARGET_KB * w * h / 187500)
                          < abs(len(best) / 1024 - TARGET_KB * w * h / 187500)):
        best = buf.getvalue()
    with open(os.path.join(root, f"{i:05d}.jpg"), "wb") as f:
      f.write(best)
    total += len(best)
  return total / n / 1024


def _config(path, name, batch=None, one_core=True):
  """configs/imagenet_vicreg.py on `path` (one_core: 1 read thread, no
  worker processes)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("imagenet_vicreg", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.update(name=name, path=path)
  if one_core:
    config.data.update(read_threads=1, num_workers=0)
  config.run_eval = False
  if batch:
    config.batch_size = batch
  return config


def _rate(config, repeats, batches=4):
  """Images/s of the train iterator (median of `repeats`), after 1 warm-up
  batch."""
  from bagssl_jax.data import load_source, make_train_iterator  # pylint: disable=g-import-not-at-top
  it = make_train_iterator(config, load_source(config.data, "train"))
  next(it)
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(batches):
      next(it)
    rates.append(batches * config.batch_size / (time.perf_counter() - t0))
  return float(np.median(rates)), it


def flops_per_image(config, batch=4):
  """XLA's FLOP count of the config's train step, per image."""
  import jax  # pylint: disable=g-import-not-at-top
  from bagssl_jax import models, optim, steps  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data import load_source, make_train_iterator  # pylint: disable=g-import-not-at-top
  config.batch_size = batch
  element = next(make_train_iterator(config, load_source(config.data,
                                                         "train")))
  abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
              for k, v in element.items()}
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, batch, 1000, 100)
  state = jax.eval_shape(steps.make_init(model, tx, config),
                         jax.random.PRNGKey(0))
  step = steps.make_train_step(model, tx, lr, config, 1000, 100)
  lowered = jax.jit(step).lower(state, abstract)
  cost = lowered.cost_analysis()  # the step's HLO before XLA's passes
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if not cost or not cost.get("flops"):
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) / batch


def _children(pid):
  kids = []
  for tid in os.listdir(f"/proc/{pid}/task"):
    with open(f"/proc/{pid}/task/{tid}/children") as f:
      kids += [int(k) for k in f.read().split()]
  return kids


def _hwm_mib(pid):
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return None


def worker_peak_rss_mib(config, batches=6):
  """Peak RSS (VmHWM) of the one grain worker process after `batches`
  batches, and the main process's peak RSS growth, in MiB (Linux)."""
  from bagssl_jax.data import load_source, make_train_iterator  # pylint: disable=g-import-not-at-top
  config.data.num_workers = 1
  before = set(_children(os.getpid()))
  it = make_train_iterator(config, load_source(config.data, "train"))
  for _ in range(batches):
    next(it)
  workers = [p for p in _children(os.getpid()) if p not in before]
  peak = max((_hwm_mib(p) or 0) for p in workers) if workers else None
  del it
  return peak


def bench_imagenet_pipeline(repeats, num_images=192):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data import prepared  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
  tmp = tempfile.mkdtemp(prefix="imagenet_like_")
  folder = os.path.join(tmp, "jpeg")
  out = {"imagenet_like_images": num_images,
         "imagenet_like_mean_kb": imagenet_like_folder(folder, num_images)}
  batch = 32
  config = _config(folder, "image_folder", batch)
  image_size = config.data.image_size
  out["imagenet_on_the_fly_images_per_s_per_core"] = _rate(config,
                                                           repeats)[0]
  for fmt in prepared.FORMATS:
    path = os.path.join(tmp, fmt)
    prepared.prepare(config.data, path, ["train"], fmt, log=lambda m: None)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
               if f.endswith(".array_record"))
    out[f"imagenet_prepared_{fmt}_gb_per_million"] = size / num_images * 1e6 / 1e9
    out[f"imagenet_prepared_{fmt}_images_per_s_per_core"] = _rate(
        _config(path, "prepared", batch), repeats)[0]
  flops = flops_per_image(_config(os.path.join(tmp, "raw"), "prepared", 4))
  consume = H100_BF16_PEAK * MFU / flops
  out.update(imagenet_train_gflops_per_image=flops / 1e9,
             h100_40pct_mfu_images_per_s=consume,
             imagenet_on_the_fly_cores_per_h100=(
                 consume / out["imagenet_on_the_fly_images_per_s_per_core"]))
  for fmt in prepared.FORMATS:
    out[f"imagenet_prepared_{fmt}_cores_per_h100"] = (
        consume / out[f"imagenet_prepared_{fmt}_images_per_s_per_core"])
  full = _config(folder, "image_folder", one_core=False)
  for key, name, path in (("on_the_fly", "image_folder", folder),
                          ("prepared_raw", "prepared",
                           os.path.join(tmp, "raw"))):
    for b in (32, full.batch_size):
      c = _config(path, name, b, one_core=False)
      out[f"imagenet_{key}_worker_peak_rss_mib_batch{b}"] = (
          worker_peak_rss_mib(c))
  out["imagenet_batch"] = full.batch_size
  out["imagenet_worker_read_threads"] = full.data.read_threads
  out["imagenet_worker_prefetch"] = full.data.prefetch
  out["imagenet_like_max_decoded_mib"] = max(
      w * h * 3 for (w, h), _ in SIZE_MIX) / 2**20
  out["imagenet_image_size"] = image_size
  shutil.rmtree(tmp, ignore_errors=True)
  return out
