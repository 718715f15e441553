"""Orbax checkpoints of a run, and `load()` for notebooks.

WORKDIR may be a local folder or a bucket (`gs://...`).
Layout: WORKDIR/config.json and WORKDIR/checkpoints/<step>/{state,data}/,
where `state` is the TrainState (params, batch_stats, opt_state, step, rng)
and `data` the grain iterator position of every process.

  m = bagssl_jax.checkpoints.load("/tmp/fm")
  h, z = m.embed_patches(patches_uint8)   # (n, p, p, C) -> (n, d), (n, d')
  f = m.embed_images(images_uint8_nhwc, protocol="16_patches")  # (n, d)
"""
from __future__ import annotations

import time

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from bagssl_jax import config as config_lib
from bagssl_jax import importers, models, numerics, optim, paths, steps
from bagssl_jax.loaded import CheckpointError, LoadedModel

__all__ = ["CheckpointError", "LoadedModel", "load", "load_external",
           "manager", "restore", "restore_newest", "save"]


def manager(workdir, keep=3, cleanup_tmp=False) -> ocp.CheckpointManager:
  """Saves are atomic: orbax writes <step>.orbax-checkpoint-tmp* and renames
  it when complete, so a half-written checkpoint is never listed.
  `cleanup_tmp` (the run holding the workdir's lock) deletes such leftovers."""
  return ocp.CheckpointManager(
      paths.join(workdir, "checkpoints"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, cleanup_tmp_directories=cleanup_tmp),
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


def restore_newest(mgr, abstract_state, data_iter=None, set_aside=True):
  """Restores the newest checkpoint that reads back whole and finite.

  Returns (state, step), or (None, None) when there is no checkpoint. A
  newer checkpoint that fails (truncated, unreadable, non-finite) gets a
  one-line warning; once an older one restores, the failed ones are moved to
  WORKDIR/checkpoints_corrupt/ (kept, out of the way of new saves; only with
  `set_aside`, i.e. by the run that holds the workdir). If none restores,
  raises CheckpointError and moves nothing.
  """
  failed = []
  for step in sorted(mgr.all_steps(), reverse=True):
    try:
      state = restore(mgr, step, abstract_state, data_iter)
      if not numerics.all_finite(state):
        raise ValueError("it holds non-finite values")
    except Exception as e:  # pylint: disable=broad-except
      reason = _first_line(e)
      logging.warning("checkpoint step %d in %s cannot be restored (%s); "
                      "trying the previous one", step, mgr.directory, reason)
      failed.append((step, reason))
      continue
    if failed and set_aside:
      _set_aside(mgr, [s for s, _ in failed])
    return state, step
  if failed:
    raise CheckpointError(
        f"no checkpoint in {mgr.directory} can be restored (" + "; ".join(
            f"step {s}: {r}" for s, r in failed) + ")")
  return None, None


def _first_line(e):
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  line = lines[0].split(" See full TensorStore")[0] if lines else ""
  return f"{type(e).__name__}: {line[:300]}"


def _set_aside(mgr, bad_steps):
  """Moves unreadable checkpoints to WORKDIR/checkpoints_corrupt/<step>."""
  directory = paths.path(mgr.directory)
  aside = directory.parent / "checkpoints_corrupt"
  _barrier("bagssl_set_aside_before")
  if jax.process_index() == 0:
    aside.mkdir(parents=True, exist_ok=True)
    for step in bad_steps:
      target = aside / str(step)
      if target.exists():
        target = aside / f"{step}.{int(time.time())}"
      paths.move(directory / str(step), target)
      logging.warning("moved unreadable checkpoint step %d to %s", step,
                      target)
  _barrier("bagssl_set_aside_after")
  mgr.reload()


def _barrier(name):
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def abstract_train_state(config, total_steps=1, steps_per_epoch=1):
  """ShapeDtypeStructs of the TrainState that `config` trains."""
  model = models.make_model(config)
  tx, _ = optim.make_optimizer(config.optimizer, config.batch_size,
                               total_steps, steps_per_epoch)
  return model, jax.eval_shape(steps.make_init(model, tx, config),
                               jax.random.PRNGKey(0))


def read_config(workdir):
  path = paths.join(workdir, "config.json")
  try:
    return config_lib.from_json(paths.read_text(path))
  except (OSError, ValueError) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None


def load(workdir, step=None) -> LoadedModel:
  """Loads `config.json` and the newest (or `step`) checkpoint of a run."""
  config = read_config(workdir)
  mgr = manager(workdir)
  available = mgr.all_steps()
  if not available:
    raise CheckpointError(f"no checkpoint in {workdir}/checkpoints")
  if step is not None and step not in available:
    raise CheckpointError(f"no checkpoint for step {step} in {workdir} "
                          f"(available: {sorted(available)})")
  model, abstract = abstract_train_state(config)
  # Onto one local device, whatever mesh / processes saved it.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      abstract)
  if step is None:  # the newest readable one
    state, step = restore_newest(mgr, abstract, set_aside=False)
  else:
    try:
      state = restore(mgr, step, abstract)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"checkpoint step {step} in {workdir} cannot be "
                            f"restored ({_first_line(e)})") from None
  mgr.close()
  return LoadedModel(config, state.params, state.batch_stats, step, model)


def load_external(path, layout, arch, **kwargs) -> LoadedModel:
  """A checkpoint trained elsewhere (torchvision, solo-learn, timm layouts);
  see `bagssl_jax.importers.load_external`."""
  return importers.load_external(path, layout, arch, **kwargs)
