"""Device mesh, parameter/optimizer-state sharding rules and global batches.

One mesh for the whole run, with axes `data` and (optionally) `fsdp`. The
batch is split over both axes together; parameters and optimizer state are
either replicated or, with `config.param_sharding="fsdp"`, every leaf of at
least `config.fsdp_min_size` elements is split along its largest dimension
divisible by the `fsdp` axis (the 8192-wide VICReg projector, the wide
ResNet-50 kernels); small leaves (biases, norms, BatchNorm statistics) stay
replicated. Under jit's global view, BatchNorm statistics and the loss are
computed over the global batch (SyncBN and VICReg's all-gather come for free),
and XLA inserts the FSDP all-gathers / reduce-scatters.
"""
from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp")  # every axis splits the batch
PARAM_SHARDINGS = ("replicated", "fsdp")


def mesh_shape(axes: dict, num_devices: int) -> dict:
  """Resolves one -1 entry of `axes` to "the rest of the devices"."""
  axes = dict(axes)
  unknown = set(axes) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.mesh: unknown axis {', '.join(sorted(unknown))} "
                     f"(axes: {', '.join(MESH_AXES)})")
  if any(v == 0 or v < -1 for v in axes.values()):
    raise ValueError(f"config.mesh: sizes must be positive or -1, got {axes}")
  known = math.prod(v for v in axes.values() if v != -1)
  rest = [k for k, v in axes.items() if v == -1]
  if len(rest) > 1:
    raise ValueError(f"config.mesh: at most one axis may be -1, got {axes}")
  if rest:
    axes[rest[0]] = num_devices // known
  if math.prod(axes.values()) != num_devices:
    raise ValueError(f"config.mesh {axes} does not cover {num_devices} devices")
  return axes


def make_mesh(mesh_config, devices=None) -> jax.sharding.Mesh:
  devices = devices if devices is not None else jax.devices()
  axes = mesh_shape(dict(mesh_config), len(devices))
  # Auto axes: XLA propagates shardings through the step (GSPMD-style).
  return jax.make_mesh(tuple(axes.values()), tuple(axes.keys()),
                       axis_types=(jax.sharding.AxisType.Auto,) * len(axes),
                       devices=devices)


def batch_axes(mesh) -> tuple:
  return tuple(a for a in MESH_AXES if a in mesh.shape)


def data_parallel_size(mesh) -> int:
  """Number of batch shards (the product of the `data` and `fsdp` axes)."""
  return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) dimension split over `data` x `fsdp`."""
  axes = batch_axes(mesh)
  return NamedSharding(mesh, P(axes if len(axes) > 1 else axes[0]))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def fsdp_spec(shape, fsdp_size, min_size) -> P:
  """P() or the spec splitting the largest dim divisible by `fsdp_size`
  (ties: the later dim) of a leaf with at least `min_size` elements."""
  if fsdp_size <= 1 or math.prod(shape) < min_size:
    return P()
  dims = [i for i, d in enumerate(shape) if d % fsdp_size == 0]
  if not dims:
    return P()
  best = max(dims, key=lambda i: (shape[i], i))
  return P(*([None] * best + ["fsdp"]))


def state_shardings(abstract_state, mesh, param_sharding="replicated",
                    fsdp_min_size=2**16):
  """NamedShardings for every leaf of an (abstract) train state: replicated,
  or FSDP over the mesh's `fsdp` axis (optimizer state follows its params:
  the rule depends on the shape only)."""
  if param_sharding not in PARAM_SHARDINGS:
    raise ValueError(f"config.param_sharding: unknown '{param_sharding}' "
                     f"(choose from {', '.join(PARAM_SHARDINGS)})")
  fsdp_size = mesh.shape.get("fsdp", 1) if param_sharding == "fsdp" else 1
  return jax.tree.map(
      lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp_size,
                                              fsdp_min_size)),
      abstract_state)


def replicate(tree, mesh):
  """A copy of a (possibly FSDP-sharded) tree, replicated on every device."""
  return jax.jit(lambda t: t, out_shardings=replicated(mesh))(tree)


def process_batch_block(mesh) -> tuple[int, int]:
  """(block, num_blocks): this process holds rows [block * B / num_blocks,
  (block + 1) * B / num_blocks) of every global batch sharded by
  `batch_sharding(mesh)`, as `jax.make_array_from_process_local_data`
  assembles it. The data pipeline reads exactly those rows, so the global
  batch does not depend on the number of processes."""
  n = data_parallel_size(mesh)
  rows = batch_sharding(mesh).addressable_devices_indices_map((n,))
  starts = sorted({idx[0].start or 0 for idx in rows.values()})
  per_process = len(starts)
  if starts != list(range(starts[0], starts[0] + per_process)) or (
      starts[0] % per_process):
    raise ValueError("this process's devices do not hold a contiguous block "
                     f"of the batch (rows {starts} of {n})")
  return starts[0] // per_process, n // per_process


def global_batch(local_batch: dict, mesh) -> dict:
  """This process's numpy batch -> global jax.Arrays sharded over the batch
  axes (rows of process p = block `process_batch_block(mesh)[0]`)."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch)


def bytes_per_device(tree) -> int:
  """Bytes each device holds of a tree of (possibly sharded) arrays."""
  total = 0
  for x in jax.tree.leaves(tree):
    shard = x.sharding.shard_shape(x.shape) if hasattr(x, "sharding") else x.shape
    total += math.prod(shard) * x.dtype.itemsize
  return total


def traced_under(fn, mesh):
  """`fn` traced with `mesh` as the abstract mesh in context, so that
  sharding constraints inside it (methods.base.gather_batch) refer to it."""

  def wrapped(*args, **kwargs):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args, **kwargs)

  return wrapped
