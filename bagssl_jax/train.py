"""BagSSL pretraining loop: mesh, input, model, sharding, step, checkpoint,
loop, eval. `train_and_evaluate(config, workdir)` is the whole run."""
from __future__ import annotations

import contextlib

import jax
import numpy as np
from absl import logging

from bagssl_jax import checkpoints, models, numerics, optim, preemption
from bagssl_jax import prefetch, preflight, reporting, sharding, steps
from bagssl_jax import config as config_lib
from bagssl_jax import heldout as heldout_lib
from bagssl_jax import workdir as workdir_lib
from bagssl_jax.data import DataError, make_train_iterator
from bagssl_jax.evaluation import monitor as knn_monitor
from bagssl_jax.evaluation import run as evaluation


def train_and_evaluate(config, workdir):
  """Pretrains on fixed-scale patches, checkpoints, then evaluates if asked.

  Returns the final TrainState (at the preemption step after a SIGTERM, with
  a checkpoint saved there and no eval). Bad config, data or workdir raise
  `ConfigError` / `DataError` / `WorkdirError` / `CheckpointError` before
  anything is compiled; a non-finite loss raises `NonFiniteError`.
  """
  with contextlib.ExitStack() as cleanup:
    return _train_and_evaluate(config, workdir, cleanup)


def _train_and_evaluate(config, workdir, cleanup):
  pc = jax.process_count()

  # ---------------------------------------------------------------- mesh ---
  try:
    mesh = sharding.make_mesh(config.mesh)
    # This process's rows of every global batch (the same for any topology).
    block, num_blocks = sharding.process_batch_block(mesh)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  dp = sharding.data_parallel_size(mesh)

  # --------------------------------------------------------------- input ---
  source, _ = preflight.check_inputs(config, dp, pc)
  # Held-out loss terms (ResNet methods; the ViT methods' multi-crop batches
  # are not built for it).
  heldout_every = (0 if models.is_vit(config)
                   else config.eval.get("heldout_every_steps", 0))
  if heldout_every:
    heldout_source, heldout_n = preflight.heldout_source(config, dp, pc)
    heldout_every = heldout_every if heldout_n else 0
  steps_per_epoch = max(len(source) // config.batch_size, 1)
  total_steps = config.total_steps or config.num_epochs * steps_per_epoch
  data_iter = make_train_iterator(config, source, block, num_blocks)
  cleanup.callback(data_iter.close)  # stops the workers, frees their blocks
  patches_per_step = config.batch_size * config.num_patches
  # Process 0 locks the workdir and checks/writes config.json: the first
  # thing written, once config and data check out, before any compile.
  cleanup.enter_context(workdir_lib.claim(workdir, config))

  # --------------------------------------------------------------- model ---
  model = models.make_model(config)
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
      sharding.traced_under(steps.make_train_step(
          model, tx, lr_schedule, config, total_steps, steps_per_epoch), mesh),
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0)

  heldout = (heldout_lib.HeldoutLoss(
      steps.make_loss_fn(model, config), config, heldout_source, heldout_n,
      mesh, state_sharding, block, num_blocks) if heldout_every else None)

  # ---------------------------------------------------------- checkpoint ---
  # The newest checkpoint that reads back whole is restored (state and the
  # grain iterator); unreadable newer ones are set aside with a warning.
  mgr = checkpoints.manager(workdir, config.keep_checkpoints, cleanup_tmp=True)
  cleanup.callback(mgr.close)
  cleanup.callback(mgr.wait_until_finished)  # runs first: async saves land
  abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract_state, state_sharding)
  state, restored = checkpoints.restore_newest(mgr, abstract, data_iter)
  if state is not None:
    logging.info("Resumed from %s at step %d", mgr.directory, restored)
    workdir_lib.drop_metrics_after(workdir, restored)
  else:
    state = jax.jit(init, out_shardings=state_sharding)(
        jax.random.PRNGKey(config.seed))
  step = int(state.step)
  _log_run(mesh, config, state, total_steps, step)

  # ---------------------------------------------------------------- loop ---
  reporter = reporting.Reporter(workdir, total_steps, patches_per_step,
                                config.log_every_seconds)
  # Global batches placed on the mesh ahead of the step by a thread; the
  # time the loop waits for one is the progress line's input-wait share.
  batches = prefetch.DevicePrefetch(data_iter, mesh,
                                    config.data.get("device_prefetch", 2))
  cleanup.callback(batches.close)
  reporter.start(step, batches)
  monitor = knn_monitor.make(model, config, mesh, reporter, total_steps)
  watcher = preemption.PreemptionWatcher()  # SIGTERM: save here, exit 0
  guard = numerics.FiniteGuard()  # never saves a non-finite state
  preempted = False
  try:
    while step < total_steps and not preempted:
      state, metrics = train_step(state, next(batches))
      step += 1
      guard.watch(step, metrics)
      preempted = watcher.reached(step)
      if step == 1 or reporter.due() or step == total_steps:
        reporter.write(step, metrics)
      if heldout and (step % heldout_every == 0 or step == total_steps):
        reporter.write_heldout(step, heldout(state))
      if monitor:
        monitor.maybe(step, state)
      if (step % config.checkpoint_every_steps == 0 or step == total_steps
          or preempted):
        guard.check_now(step, state)
        checkpoints.save(mgr, step, state, batches.checkpoint_iterator())
        reporter.flush()
  except numerics.NonFiniteError as e:
    mgr.wait_until_finished()
    raise numerics.NonFiniteError(
        f"{e}; the last good checkpoint is step {mgr.latest_step()} in "
        f"{mgr.directory}") from None
  except DataError as e:  # e.g. a data worker killed by the OOM killer
    mgr.wait_until_finished()
    last = mgr.latest_step()
    raise DataError(f"{e} (step {last} in {mgr.directory})" if last is not None
                    else f"{e} (none saved yet in {mgr.directory})") from None
  finally:
    watcher.close()  # a SIGTERM from here on (eval) stops the process
    batches.close()  # stops reading ahead
    reporter.close()
  if preempted:
    mgr.wait_until_finished()
    logging.warning("preempted: saved step %d to %s; exiting", step,
                    mgr.directory)
    return state
  mgr.wait_until_finished()

  # ---------------------------------------------------------------- eval ---
  if config.run_eval:
    variables = sharding.replicate(
        {"params": state.params, "batch_stats": state.batch_stats}, mesh)
    evaluation.evaluate(model, variables, config, mesh, workdir, step)
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
