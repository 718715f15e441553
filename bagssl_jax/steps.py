"""Train state, the pure loss function and the train step.

`loss_fn(params, batch_stats, rng, batch) -> (loss, aux)` is pure; the train
step differentiates it, applies the optax update and folds the step into the
rng. `train.py` jits both `init` and `train_step` with explicit shardings.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from bagssl_jax import augment, losses, models

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def make_model(config) -> models.BagSSLModel:
  m = config.model
  return models.BagSSLModel(depth=m.depth, width=m.width,
                            cifar_stem=m.cifar_stem,
                            projector_dims=tuple(m.projector_dims),
                            dtype=DTYPES[config.dtype])


def input_shape(config):
  return (1, config.input_size, config.input_size, config.data.channels)


def make_init(model, tx, config):
  """init(rng) -> TrainState (jit it with out_shardings)."""

  def init(rng):
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, jnp.zeros(input_shape(config)),
                           train=True)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables["batch_stats"],
                      opt_state=tx.init(params), rng=state_rng)

  return init


def make_loss_fn(model, config):
  """Pure SSL loss of a patch batch {"patches": uint8 (B, N, p, p, C)}."""

  def loss_fn(params, batch_stats, rng, batch):
    b, n = batch["patches"].shape[:2]
    x = augment.train_views(rng, batch["patches"], config)
    (_, z), new_vars = model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True,
        mutable=["batch_stats"])
    loss, metrics = losses.method_loss(config.method, z.reshape(b, n, -1),
                                       **config.loss)
    return loss, (metrics, new_vars["batch_stats"])

  return loss_fn


def make_train_step(model, tx, lr_schedule, config):
  """train_step(state, batch) -> (new state, metrics)."""
  loss_fn = make_loss_fn(model, config)

  def train_step(state, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params, state.batch_stats, rng, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
               "lr": lr_schedule(state.step)}
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state), metrics

  return train_step
