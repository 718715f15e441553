"""Per-device memory of a config's train step, from XLA's own analysis.

Lowers and compiles the sharded train step on abstract arguments only
(ShapeDtypeStructs: nothing is allocated) for each parameter layout and
prints `compiled.memory_analysis()`: argument, output, alias (donated state),
temp and generated-code bytes per device, plus the train state's bytes per
device from the sharding rules, and the bytes each kind of collective moves
per device per step (from the compiled HLO; the gradient reduction apart
from the loss's own collectives).

  python -m bagssl_jax.memory --config=configs/imagenet_vicreg.py --devices=8

`--devices=N` analyses a mesh of N fake CPU devices (XLA's CPU backend: its
buffer assignment, not a GPU's or TPU's); without it, the machine's own
devices. Layouts: `replicated` (mesh data=N) and `fsdp` (mesh fsdp=N, leaves
of at least `config.fsdp_min_size` elements split). Convolutions are lowered
as on accelerators unless `--cpu_convs` (the CPU-only rewrites of
models/resnet.py's Conv).
"""
from __future__ import annotations

import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from bagssl_jax import models, optim, sharding, steps

LAYOUT_MESH = {"replicated": {"data": -1, "fsdp": 1},
               "fsdp": {"data": 1, "fsdp": -1}}


def abstract_batch(config, batch_sharding):
  """ShapeDtypeStructs of one global batch from the host pipeline."""
  b, n, c = config.batch_size, config.num_patches, config.data.channels
  if config.get("crop", "patches") == "rrc":
    s = config.data.image_size
    shapes = {"image": ((b, s, s, c), jnp.uint8),
              "boxes": ((b, n, 4), jnp.float32)}
  else:
    p = config.patch_size
    shapes = {"patches": ((b, n, p, p, c), jnp.uint8)}
  shapes["label"] = ((b,), jnp.int32)
  return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding)
          for k, (shape, dtype) in shapes.items()}


def analyze(config, layout, devices=None) -> dict:
  """Compiles the train step of `config` for `layout` on abstract arguments;
  returns its per-device memory figures (bytes)."""
  mesh = sharding.make_mesh(LAYOUT_MESH[layout], devices)
  total_steps = config.total_steps or 1000
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size,
                                total_steps, 100)
  abstract = jax.eval_shape(steps.make_init(model, tx, config),
                            jax.random.PRNGKey(0))
  state_sharding = sharding.state_shardings(
      abstract, mesh, layout, config.get("fsdp_min_size", 2**16))
  batch_sharding = sharding.batch_sharding(mesh)
  abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract, state_sharding)
  step = jax.jit(
      sharding.traced_under(
          steps.make_train_step(model, tx, lr, config, total_steps), mesh),
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0)
  start = time.time()
  compiled = step.lower(abstract_state,
                        abstract_batch(config, batch_sharding)).compile()
  m = compiled.memory_analysis()
  collectives = collective_bytes(compiled.as_text(), abstract.params,
                                 mesh.size)
  out = dict(
      layout=layout, mesh=dict(mesh.shape), platform=mesh.devices.flat[0].platform,
      dtype=config.get("dtype", "float32"), global_batch=config.batch_size,
      per_device_batch=config.batch_size // sharding.data_parallel_size(mesh),
      params=int(sum(np.prod(x.shape)
                     for x in jax.tree.leaves(abstract.params))),
      params_bytes=sharding.bytes_per_device(abstract_state.params),
      state_bytes=sharding.bytes_per_device(abstract_state),
      argument_bytes=m.argument_size_in_bytes,
      output_bytes=m.output_size_in_bytes, alias_bytes=m.alias_size_in_bytes,
      temp_bytes=m.temp_size_in_bytes,
      generated_code_bytes=m.generated_code_size_in_bytes,
      compile_s=round(time.time() - start, 1),
      collective_bytes=collectives,
      loss_collective_bytes=sum(v for k, v in collectives.items()
                                if k not in PARAMETER_TRAFFIC))
  # Live at once: inputs + outputs (minus the donated state they share) + temps.
  out["peak_bytes"] = (out["argument_bytes"] + out["output_bytes"]
                       - out["alias_bytes"] + out["temp_bytes"])
  return out


_COLLECTIVE = re.compile(
    r"=\s*(?P<type>.*?)\s+(?P<op>all-reduce|all-gather|reduce-scatter|"
    r"all-to-all|collective-permute)(?P<start>-start)?\(")
_SHAPE = re.compile(r"\b(?P<dtype>pred|[suf]\d+|bf16|f8e\w+)\[(?P<dims>[\d,]*)\]")
_BYTES = {"pred": 1, "bf16": 2}


def _shape_bytes(dtype, dims):
  n = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
  size = _BYTES.get(dtype) or max(int(re.sub(r"\D", "", dtype) or 8) // 8, 1)
  return n * size


def collective_bytes(hlo_text, params=None, num_devices=1) -> dict:
  """Bytes per device moved by each kind of collective in compiled HLO text
  (the result buffers of every all-reduce, all-gather, reduce-scatter,
  all-to-all and collective-permute; an async `-start` op counts its largest
  buffer). With `params` (a pytree of arrays or ShapeDtypeStructs), buffers
  that match a parameter leaf by element count (one per leaf and kind; XLA
  may reshape) are the parameters' own traffic: `gradient_all-reduce`,
  `gradient_reduce-scatter` (FSDP: a result of 1/num_devices of a leaf) and
  `param_all-gather` (FSDP). The rest is the loss's and the model's."""
  out, counts = {}, {}
  for leaf in jax.tree.leaves(params or {}):
    n = int(np.prod(leaf.shape))
    counts[n] = counts.get(n, 0) + 1
  own = {"all-reduce": ("gradient_all-reduce", dict(counts), 1),
         "all-gather": ("param_all-gather", dict(counts), 1),
         "reduce-scatter": ("gradient_reduce-scatter", dict(counts),
                            num_devices)}
  for line in hlo_text.splitlines():
    m = _COLLECTIVE.search(line)
    if not m:
      continue
    shapes = [(s["dtype"], s["dims"]) for s in _SHAPE.finditer(m["type"])]
    if m["start"]:
      shapes = [max(shapes, key=lambda s: _shape_bytes(*s))]
    for dtype, dims in shapes:
      kind = m["op"]
      n = int(np.prod([int(d) for d in dims.split(",") if d]))
      if kind in own:
        name, left, factor = own[kind]
        if left.get(n * factor, 0) > 0:
          left[n * factor] -= 1
          kind = name
      out[kind] = out.get(kind, 0) + _shape_bytes(dtype, dims)
  return out


PARAMETER_TRAFFIC = ("gradient_all-reduce", "gradient_reduce-scatter",
                     "param_all-gather")


def _mib(x):
  return f"{x / 2**20:,.1f}"


def format_table(rows) -> str:
  cols = ("layout", "mesh", "per_device_batch", "params_bytes", "state_bytes",
          "argument_bytes", "output_bytes", "alias_bytes", "temp_bytes",
          "generated_code_bytes", "peak_bytes")
  lines = ["| " + " | ".join(c.replace("_bytes", " MiB") for c in cols) + " |",
           "|" + "---|" * len(cols)]
  for r in rows:
    lines.append("| " + " | ".join(
        _mib(r[c]) if c.endswith("_bytes") else str(r[c]) for c in cols) + " |")
  return "\n".join(lines)
