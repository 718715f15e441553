"""The train step's loss terms on a fixed held-out batch (a training metric,
logged to metrics.jsonl as heldout/<term>)."""
from __future__ import annotations

import jax

from bagssl_jax import sharding
from bagssl_jax.data import pipeline


class HeldoutLoss:
  """The loss terms of the train step on a fixed held-out batch.

  The batch is the first `n` (eval.heldout_images) test images with
  patches (or crops) drawn as in training from `eval.seed`; the augmentation
  key is fixed, so the curve moves only with the parameters. Uses train-mode
  BatchNorm (the loss as training sees it) and updates nothing.
  """

  def __init__(self, loss_fn, config, source, n, mesh, state_sharding, block,
               num_blocks):
    batch = next(pipeline.eval_batches(
        source, n, config.data.channels, config.data.get("image_size") or 0,
        n, block, num_blocks))
    element = pipeline.crop_views(
        batch["image"], batch["label"], batch["index"],
        pipeline.CropSpec.from_config(config, seed=config.eval.seed))
    self.batch = sharding.global_batch(element, mesh)
    key = jax.random.PRNGKey(config.eval.seed)

    def fn(state, batch):
      loss, (metrics, _, _) = loss_fn(state.params, state, key, batch)
      return {**metrics, "loss": loss}

    self._fn = jax.jit(fn, in_shardings=(state_sharding,
                                         sharding.batch_sharding(mesh)),
                       out_shardings=sharding.replicated(mesh))

  def __call__(self, state):
    return self._fn(state, self.batch)
