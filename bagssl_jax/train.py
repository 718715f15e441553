"""BagSSL pretraining loop: mesh, input, model, sharding, step, checkpoint,
loop, eval. `train_and_evaluate(config, workdir)` is the whole run."""
from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from bagssl_jax import checkpoints, optim, reporting, sharding, steps
from bagssl_jax import config as config_lib
from bagssl_jax import eval as eval_lib
from bagssl_jax.data import load_source, make_train_iterator, sources


def train_and_evaluate(config, workdir):
  """Pretrains on fixed-scale patches, checkpoints, then evaluates if asked.

  Returns the final TrainState. Bad config or data raise `ConfigError` /
  `DataError` before anything is compiled.
  """
  pi, pc = jax.process_index(), jax.process_count()

  # ---------------------------------------------------------------- mesh ---
  try:
    mesh = sharding.make_mesh(config.mesh)
    # This process's rows of every global batch (the same for any topology).
    block, num_blocks = sharding.process_batch_block(mesh)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  dp = sharding.data_parallel_size(mesh)

  # --------------------------------------------------------------- input ---
  source = load_source(config.data, config.data.train_split)
  image_shape = sources.image_shape(source, config.data)
  config_lib.validate(config, image_shape, dp, pc)
  steps_per_epoch = max(len(source) // config.batch_size, 1)
  total_steps = config.total_steps or config.num_epochs * steps_per_epoch
  data_iter = make_train_iterator(config, source, block, num_blocks)
  patches_per_step = config.batch_size * config.num_patches

  # --------------------------------------------------------------- model ---
  model = steps.make_model(config)
  tx, lr_schedule = optim.make_optimizer(config.optimizer, config.batch_size,
                                         total_steps, steps_per_epoch)
  init = steps.make_init(model, tx, config)

  # ------------------------------------------------------------ sharding ---
  abstract_state = jax.eval_shape(init, jax.random.PRNGKey(config.seed))
  state_sharding = sharding.state_shardings(
      abstract_state, mesh, config.get("param_sharding", "replicated"),
      config.get("fsdp_min_size", 2**16))
  batch_sharding = sharding.batch_sharding(mesh)

  # ---------------------------------------------------------------- step ---
  train_step = jax.jit(
      steps.make_train_step(model, tx, lr_schedule, config, total_steps),
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0)

  # ---------------------------------------------------------- checkpoint ---
  if pi == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config_lib.to_json(config))
  mgr = checkpoints.manager(workdir, config.keep_checkpoints)
  latest = mgr.latest_step()
  if latest is not None:
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        abstract_state, state_sharding)
    state = checkpoints.restore(mgr, latest, abstract, data_iter)
    logging.info("Resumed from %s at step %d", mgr.directory, latest)
  else:
    state = jax.jit(init, out_shardings=state_sharding)(
        jax.random.PRNGKey(config.seed))
  step = int(state.step)
  _log_run(mesh, config, state, total_steps, step)

  # ---------------------------------------------------------------- loop ---
  reporter = reporting.Reporter(workdir, total_steps, patches_per_step,
                                config.log_every_seconds)
  reporter.start(step)
  metrics = None
  while step < total_steps:
    batch = sharding.global_batch(next(data_iter), mesh)
    state, metrics = train_step(state, batch)
    step += 1
    if step == 1 or reporter.due() or step == total_steps:
      reporter.write(step, metrics)
    if step % config.checkpoint_every_steps == 0 or step == total_steps:
      checkpoints.save(mgr, step, state, data_iter)
  mgr.wait_until_finished()
  mgr.close()
  reporter.close()

  # ---------------------------------------------------------------- eval ---
  if config.run_eval:
    eval_lib.evaluate(model, sharding.replicate(
        {"params": state.params, "batch_stats": state.batch_stats}, mesh),
                      config, mesh, workdir)
  return state


def _log_run(mesh, config, state, total_steps, step):
  n_params = sum(np.prod(x.shape) for x in jax.tree.leaves(state.params))
  logging.info(
      "mesh %s | %d processes | global batch %d images x %d patches, %d "
      "images per device | %s params (%s, %s compute): %.1f MiB params, "
      "%.1f MiB train state per device | steps %d..%d",
      dict(mesh.shape), jax.process_count(), config.batch_size,
      config.num_patches, config.batch_size // sharding.data_parallel_size(mesh),
      f"{n_params:,}", config.get("param_sharding", "replicated"),
      config.get("dtype", "float32"),
      sharding.bytes_per_device(state.params) / 2**20,
      sharding.bytes_per_device(state) / 2**20, step, total_steps)
