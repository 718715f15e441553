"""Accelerator benchmark of a config's real train step: uint8 patches ->
on-device augmentation -> model -> loss -> update, as `train.py` runs it.

Reports images/s, patches/s, model FLOPs per step and MFU = model FLOPs /
step time / the device's peak dense bf16 FLOP/s, and the device's peak
memory. Model FLOPs come from XLA's cost analysis of the *lowered* step
(before optimisation: the computation as written, so fusions and cuBLAS /
cuDNN custom calls of the optimised module cannot hide FLOPs); CUDA's PJRT
plugin analyses no lowered module, so there the step is counted on the host
CPU's backend (`model_flops`). Run by
`python -m bagssl_jax.bench --sections=gpu` on a GPU or TPU;
`run(..., config=tiny)` is a CPU smoke test.
"""
from __future__ import annotations

import re
import statistics
import time

import jax
import numpy as np

# Peak dense (not sparse) bf16 FLOP/s per chip, vendor datasheets; matched on
# the whole `device_kind` string (JAX's names), never on a substring.
PEAK_BF16_FLOPS = (
    (r"NVIDIA H100 80GB HBM3|NVIDIA H100 SXM5? ?\d*GB.*|NVIDIA H100", 989.4e12),
    (r"NVIDIA H100 PCIe|NVIDIA H100 80GB PCIe", 756.0e12),
    (r"NVIDIA H100 NVL", 835.0e12),
    (r"NVIDIA H200|NVIDIA H200 141GB HBM3e", 989.4e12),
    (r"NVIDIA H200 NVL", 835.0e12),
    (r"NVIDIA A100([- ].*)?", 312.0e12),  # SXM4 and PCIe, 40 and 80 GB
    (r"NVIDIA L40S", 362.1e12),
    (r"NVIDIA L4", 121.0e12),
    (r"TPU v4", 275.0e12),
    (r"TPU v5 lite|TPU v5e", 197.0e12),
    (r"TPU v5p?", 459.0e12),
    (r"TPU v6 lite|TPU v6e", 918.0e12),
)


def peak_flops(device_kind: str):
  """Peak dense bf16 FLOP/s of a device kind, or None if not in the table."""
  for pattern, flops in PEAK_BF16_FLOPS:
    if re.fullmatch(pattern, device_kind.strip()):
      return flops
  return None


def lowered_flops(fn, *args):
  """XLA's FLOP count of the lowered, unoptimised `fn(*args)`, or None where
  the backend analyses no lowered module (PJRT plugins: CUDA, TPU)."""
  cost = jax.jit(fn).lower(*args).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and cost.get("flops") else None


def model_flops(fn, *args, host_fn=None) -> float:
  """FLOPs of `fn(*args)` as written: XLA's cost analysis of the lowered,
  unoptimised module. Where the accelerator's backend gives none, the same
  computation (`host_fn`, default `fn`: traced as for the accelerator, since
  trace-time choices follow `jax.default_backend()`) is lowered for the host
  CPU on abstract arguments (nothing is allocated) and counted there."""
  flops = lowered_flops(fn, *args)
  if flops is None:
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu)
        if hasattr(x, "shape") else x, args)
    flops = lowered_flops(host_fn or fn, *abstract)
  return flops or 0.0


def imagenet_config(dtype="bfloat16", batch_size=None):
  from bagssl_jax.config import presets  # pylint: disable=g-import-not-at-top
  config = presets.build("imagenet", "vicreg")
  config.dtype = dtype
  if batch_size:
    config.batch_size = batch_size
  return config


def step_rate(config, repeats=5, steps_per_repeat=10, seed=0):
  """Times the config's train step on all local devices (data parallel)."""
  from bagssl_jax import models, optim, sharding, steps  # pylint: disable=g-import-not-at-top
  from bagssl_jax.bench import memory  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1})
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size, 1000, 100)
  init = steps.make_init(model, tx, config)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(seed))
  state_sharding = sharding.state_shardings(abstract, mesh, "replicated")
  batch_sharding = sharding.batch_sharding(mesh)
  state = jax.jit(init, out_shardings=state_sharding)(jax.random.PRNGKey(seed))
  rng = np.random.default_rng(seed)
  batch = {}
  for k, s in memory.abstract_batch(config, batch_sharding).items():
    host = (rng.integers(0, 256, s.shape, np.uint8) if s.dtype == np.uint8
            else np.zeros(s.shape, s.dtype))
    if k == "boxes":
      host[..., 2:] = 1.0
    batch[k] = jax.device_put(host, batch_sharding)
  step = sharding.traced_under(
      steps.make_train_step(model, tx, lr, config, 1000), mesh)
  host_mesh = jax.sharding.Mesh(  # the host CPU's FLOP count (model_flops)
      np.array(jax.devices("cpu")[:1]).reshape((1,) * len(mesh.axis_names)),
      mesh.axis_names)
  flops = model_flops(step, state, batch, host_fn=sharding.traced_under(
      steps.make_train_step(model, tx, lr, config, 1000), host_mesh))
  t0 = time.perf_counter()
  compiled = jax.jit(step, in_shardings=(state_sharding, batch_sharding),
                     out_shardings=(state_sharding, sharding.replicated(mesh)),
                     donate_argnums=0).lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(2):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(steps_per_repeat):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append((time.perf_counter() - t0) / steps_per_repeat)
  return dict(step_s=statistics.median(times), flops=flops,
              compile_s=compile_s, devices=mesh.size)


def peak_memory_bytes(device):
  stats = device.memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def run(repeats=5, config=None):
  """The benchmark's figures for `config` (default: configs/imagenet_vicreg.py
  in bf16)."""
  config = config or imagenet_config()
  device = jax.devices()[0]
  r = step_rate(config, repeats)
  peak = peak_flops(device.device_kind)
  per_chip = r["flops"] / r["step_s"] / r["devices"]
  return {
      "gpu_device": device.device_kind, "gpu_devices": r["devices"],
      "gpu_peak_bf16_tflops": peak / 1e12 if peak else None,
      "gpu_images_per_s": config.batch_size / r["step_s"],
      "gpu_patches_per_s": config.batch_size * config.num_patches / r["step_s"],
      "gpu_model_tflops_per_step": r["flops"] / 1e12,
      "gpu_mfu": per_chip / peak if peak else None,
      "gpu_compile_s": r["compile_s"],
      "gpu_peak_memory_gib": (peak_memory_bytes(device) or 0) / 2**30 or None,
  }


def sweep(repeats=3, per_device=(256, 512, 1024)):
  """`run` at several per-device batches of configs/imagenet_vicreg.py (the
  preset's own batch is unchanged). Peak memory is the process's peak so
  far: batches run in increasing size, so each row's is its own."""
  out = {}
  n = jax.local_device_count()
  for b in per_device:
    try:
      r = run(repeats, imagenet_config(batch_size=b * n))
    except Exception as e:  # pylint: disable=broad-except
      out[f"gpu_batch{b}_error"] = f"{type(e).__name__}: {str(e)[:200]}"
      break  # a larger batch will not fit either
    out.update({f"gpu_batch{b}_{k[4:]}": v for k, v in r.items()
                if k in ("gpu_images_per_s", "gpu_mfu",
                         "gpu_peak_memory_gib", "gpu_compile_s")})
  return out
