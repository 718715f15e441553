"""Device mesh, shardings and global batches.

One mesh for the whole run; the batch is split over its `data` axis and
parameters are replicated. With jit's global view, BatchNorm statistics and
the loss are computed over the global batch (SyncBN and VICReg's all-gather
come for free).
"""
from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def mesh_shape(axes: dict, num_devices: int) -> dict:
  """Resolves one -1 entry of `axes` to "the rest of the devices"."""
  axes = dict(axes)
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


def data_parallel_size(mesh) -> int:
  return mesh.shape["data"]


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) dimension split over the `data` axis."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(local_batch: dict, mesh) -> dict:
  """This process's numpy batch -> global jax.Arrays sharded over `data`."""
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
