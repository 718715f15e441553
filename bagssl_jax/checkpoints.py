"""Orbax checkpoints of a run, and `load()` for notebooks.

Layout: WORKDIR/config.json and WORKDIR/checkpoints/<step>/{state,data}/,
where `state` is the TrainState (params, batch_stats, opt_state, step, rng)
and `data` the grain iterator position of every process.

  m = bagssl_jax.checkpoints.load("/tmp/fm")
  h, z = m.embed_patches(patches_uint8)   # (n, p, p, C) -> (n, d), (n, d')
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from bagssl_jax import augment
from bagssl_jax import config as config_lib
from bagssl_jax import optim, steps


class CheckpointError(ValueError):
  """A workdir or checkpoint that cannot be read; one-line message."""


def manager(workdir, keep=3) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
      item_names=("state", "data"))


def save(mgr, step, state, data_iter=None, wait=False):
  items = {"state": ocp.args.StandardSave(state)}
  if data_iter is not None:
    items["data"] = grain.checkpoint.CheckpointSave(data_iter)
  mgr.save(int(step), args=ocp.args.Composite(**items), force=True)
  if wait:
    mgr.wait_until_finished()


def restore(mgr, step, abstract_state, data_iter=None):
  """Restores onto the shardings of `abstract_state` (and the iterator)."""
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iter is not None:
    items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
  return mgr.restore(int(step), args=ocp.args.Composite(**items))["state"]


def abstract_train_state(config, total_steps=1, steps_per_epoch=1):
  """ShapeDtypeStructs of the TrainState that `config` trains."""
  model = steps.make_model(config)
  tx, _ = optim.make_optimizer(config.optimizer, config.batch_size,
                               total_steps, steps_per_epoch)
  return model, jax.eval_shape(steps.make_init(model, tx, config),
                               jax.random.PRNGKey(0))


def read_config(workdir):
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      return config_lib.from_json(f.read())
  except (OSError, ValueError) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None


@dataclasses.dataclass
class LoadedModel:
  """A trained model for notebooks: config, params, batch_stats, step."""
  config: Any
  params: Any
  batch_stats: Any
  step: int
  model: Any

  @property
  def variables(self):
    return {"params": self.params, "batch_stats": self.batch_stats}

  def embed_patches(self, patches):
    """uint8 patches (n, p, p, C) -> (h, z) with eval-mode BatchNorm."""
    x = augment.normalize(augment.to_float(np.asarray(patches),
                                           self.config.input_size),
                          self.config.data.mean, self.config.data.std)
    return _apply_eval(self.model, self.variables, x)


@jax.jit(static_argnums=0)
def _apply_eval(model, variables, x):
  return model.apply(variables, x, train=False)


def load(workdir, step=None) -> LoadedModel:
  """Loads `config.json` and the newest (or `step`) checkpoint of a run."""
  config = read_config(workdir)
  mgr = manager(workdir)
  available = mgr.all_steps()
  if not available:
    raise CheckpointError(f"no checkpoint in {workdir}/checkpoints")
  step = max(available) if step is None else step
  if step not in available:
    raise CheckpointError(f"no checkpoint for step {step} in {workdir} "
                          f"(available: {sorted(available)})")
  model, abstract = abstract_train_state(config)
  # Onto one local device, whatever mesh / processes saved it.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      abstract)
  state = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract)))["state"]
  mgr.close()
  return LoadedModel(config, state.params, state.batch_stats, step, model)
