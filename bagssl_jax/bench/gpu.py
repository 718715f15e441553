"""GPU benchmark of the BagSSL VICReg step (ResNet-50, bf16): images/s and
MFU = model FLOPs (XLA's cost analysis of the compiled step) / step time /
the device's peak dense bf16 FLOP/s. Run by `python -m bagssl_jax.bench`
on a GPU; `run(..., image_size=32, batch=8)` is a CPU smoke test.
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

# Peak dense bf16 tensor-core FLOP/s by device kind (vendor datasheets).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12,
                   "L4": 121e12, "V100": 125e12}


def peak_flops(device):
  kind = device.device_kind
  for name, flops in PEAK_BF16_FLOPS.items():
    if name in kind:
      return flops
  return None


def _config(image_size, batch, num_patches):
  from bagssl_jax.config import presets  # pylint: disable=g-import-not-at-top
  config = presets.build("imagenet", "vicreg")
  config.dtype = "bfloat16"
  config.batch_size = batch
  config.num_patches = num_patches
  config.patch_size = config.input_size = image_size
  return config


def step_rate(image_size, batch, num_patches, repeats=5, steps_per_repeat=10):
  """(images/s, patches/s, flops per step, compile seconds) of the jitted
  step on one device, on ready float patches (no host pipeline)."""
  import optax  # pylint: disable=g-import-not-at-top
  from bagssl_jax import methods, models, optim, steps
  config = _config(image_size, batch, num_patches)
  model = models.make_model(config)
  tx, _ = optim.make_optimizer(config.optimizer, batch, 1000, 100)
  state = jax.jit(steps.make_init(model, tx, config))(jax.random.PRNGKey(0))
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(batch * num_patches, image_size, image_size, 3)), jnp.float32)

  def step(state, x):
    def loss_fn(params):
      (_, z), new = model.apply({"params": params,
                                 "batch_stats": state.batch_stats}, x,
                                train=True, mutable=["batch_stats"])
      z = z.astype(jnp.float32).reshape(batch, num_patches, -1)
      loss, _ = methods.get("vicreg").loss(z, "pairs")
      return loss, new["batch_stats"]
    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(g, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates),
                         batch_stats=stats, opt_state=opt_state), loss

  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0).lower(state, x).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  for _ in range(2):
    state, loss = compiled(state, x)
  jax.block_until_ready(loss)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(steps_per_repeat):
      state, loss = compiled(state, x)
    jax.block_until_ready(loss)
    times.append((time.perf_counter() - t0) / steps_per_repeat)
  dt = statistics.median(times)
  return batch / dt, batch * num_patches / dt, flops, compile_s, dt


def run(repeats=5, cases=(("224", 224, 128, 2), ("100px_patches", 100, 128, 8))):
  device = jax.devices()[0]
  peak = peak_flops(device)
  out = {"gpu_device": device.device_kind}
  for name, size, batch, n in cases:
    ips, pps, flops, compile_s, dt = step_rate(size, batch, n, repeats)
    out[f"gpu_{name}_images_per_s"] = ips
    out[f"gpu_{name}_patches_per_s"] = pps
    out[f"gpu_{name}_step_tflops"] = flops / 1e12
    out[f"gpu_{name}_compile_s"] = compile_s
    out[f"gpu_{name}_mfu"] = (flops / dt / peak) if peak and flops else None
  return out
