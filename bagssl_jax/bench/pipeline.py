"""The `imagenet_pipeline` section: can one host keep an H100 fed?

Builds an ImageNet-like JPEG folder (crops of scikit-learn's sample photos at
ImageNet's size mix, re-encoded to ~110 KB per file) and prepares it once
(`bagssl_jax.prepare`) in each stored format, then times the real train
pipeline of configs/imagenet_vicreg.py at the config's batch:
- per core: one process pinned to one CPU, 1 read thread, no worker process,
  on the fly (decode, resize, centre crop every epoch) and prepared;
- scaling (`scaling`): the whole CPU per image of that one process, the main
  process's CPU per image while 1 and 2 worker processes build the batches
  (getrusage of the main process: what it spends receiving batches), their
  ratio (the cores of workers one main process absorbs), images/s with 0, 1
  and 2 workers, and the ceiling of one process, 1 / main CPU per image.
The config's train FLOPs per image come from XLA's cost analysis of its
train step; an H100 SXM at 40% MFU consumes `H100_BF16_PEAK * MFU / flops`
images/s: host cores needed = that / images per second per core, processes
needed = that / one process's ceiling. A worker's peak memory is measured
with the config's read threads and prefetch.
"""
from __future__ import annotations

import io
import os
import resource
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


def _config(path, name, batch=None, workers=0, read_threads=1):
  """configs/imagenet_vicreg.py on `path` with `workers` worker processes
  and `read_threads` per process (None: the config's)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("imagenet_vicreg", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.update(name=name, path=path, num_workers=workers)
  if read_threads:
    config.data.read_threads = read_threads
  config.run_eval = False
  if batch:
    config.batch_size = batch
  return config


def _cpu_seconds():
  """CPU time of this process, all its threads (not its children)."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _measure(config, batches, warmup=2):
  """(images/s, this process's CPU seconds per image) of the train iterator
  over `batches` batches after `warmup` (worker start-up excluded)."""
  from bagssl_jax.data import load_source, make_train_iterator  # pylint: disable=g-import-not-at-top
  it = make_train_iterator(config, load_source(config.data, "train"))
  for _ in range(warmup):
    next(it)
  cpu, start = _cpu_seconds(), time.perf_counter()
  for _ in range(batches):
    next(it)
  seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
  it.close()
  n = batches * config.batch_size
  return n / seconds, cpu / n


def _pinned(fn, *args):
  """`fn(*args)` with this process on one CPU (a per-core figure)."""
  if not hasattr(os, "sched_setaffinity"):
    return fn(*args)
  cpus = os.sched_getaffinity(0)
  os.sched_setaffinity(0, {min(cpus)})
  try:
    return fn(*args)
  finally:
    os.sched_setaffinity(0, cpus)


def scaling(path, name, batch, batches):
  """How far one main process scales: whole CPU per image with no worker
  process (pinned to one core), the main process's CPU per image while 1
  and 2 worker processes build the batches, images/s of each, and their
  ratio: the cores of workers one main process absorbs."""
  rate0, whole = _pinned(_measure, _config(path, name, batch), batches)
  out = {"one_process_cpu_us_per_image": whole * 1e6,
         "images_per_s_0_workers": rate0}
  for workers in (1, 2):
    rate, main_cpu = _measure(_config(path, name, batch, workers), batches)
    out[f"images_per_s_{workers}_workers"] = rate
    out[f"main_cpu_us_per_image_{workers}_workers"] = main_cpu * 1e6
  main_cpu = out["main_cpu_us_per_image_2_workers"] / 1e6
  out.update(main_cpu_ms_per_batch_2_workers=main_cpu * batch * 1e3,
             cores_absorbed=whole / main_cpu,
             one_process_ceiling_images_per_s=1 / main_cpu)
  return out


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
  it.close()
  return peak


def bench_imagenet_pipeline(repeats, num_images=440):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data import prepared  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  tmp = tempfile.mkdtemp(prefix="imagenet_like_")
  folder = os.path.join(tmp, "jpeg")
  out = {"imagenet_like_images": num_images,
         "imagenet_like_mean_kb": imagenet_like_folder(folder, num_images)}
  full = _config(folder, "image_folder")
  batch = full.batch_size
  paths = {"on_the_fly": ("image_folder", folder)}
  for fmt in prepared.FORMATS:
    path = os.path.join(tmp, fmt)
    prepared.prepare(full.data, path, ["train"], fmt, log=lambda m: None)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
               if f.endswith(".array_record"))
    out[f"imagenet_prepared_{fmt}_gb_per_million"] = size / num_images * 1e6 / 1e9
    paths[f"prepared_{fmt}"] = ("prepared", path)
  # Per core: one process pinned to one CPU, the config's batch.
  for key, (name, path) in paths.items():
    out[f"imagenet_{key}_images_per_s_per_core"] = float(np.median([
        _pinned(_measure, _config(path, name, batch), 2)[0]
        for _ in range(repeats)]))
  flops = flops_per_image(_config(paths["prepared_raw"][1], "prepared", 4))
  consume = H100_BF16_PEAK * MFU / flops
  out.update(imagenet_train_gflops_per_image=flops / 1e9,
             h100_40pct_mfu_images_per_s=consume)
  # Scaling of one main process over worker processes (medians).
  for key in ("prepared_raw", "on_the_fly"):
    name, path = paths[key]
    runs = [scaling(path, name, batch, 16 if key == "prepared_raw" else 6)
            for _ in range(repeats)]
    for k in runs[0]:
      out[f"imagenet_{key}_{k}"] = float(np.median([r[k] for r in runs]))
    per_core = out[f"imagenet_{key}_images_per_s_per_core"]
    ceiling = out[f"imagenet_{key}_one_process_ceiling_images_per_s"]
    out[f"imagenet_{key}_h100_cores_needed"] = consume / per_core
    out[f"imagenet_{key}_processes_per_h100"] = consume / ceiling
  for key, (name, path) in paths.items():
    if key in ("on_the_fly", "prepared_raw"):
      for b in (32, batch):
        out[f"imagenet_{key}_worker_peak_rss_mib_batch{b}"] = (
            worker_peak_rss_mib(_config(path, name, b, 1, None)))
  out["imagenet_batch"] = batch
  out["imagenet_worker_read_threads"] = _config(folder, "image_folder", None,
                                                0, None).data.read_threads
  out["imagenet_worker_prefetch"] = full.data.prefetch
  out["imagenet_like_max_decoded_mib"] = max(
      w * h * 3 for (w, h), _ in SIZE_MIX) / 2**20
  out["imagenet_image_size"] = full.data.image_size
  shutil.rmtree(tmp, ignore_errors=True)
  return out
