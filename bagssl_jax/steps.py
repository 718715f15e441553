"""Train state, the pure loss function and the train step.

`loss_fn(params, state, rng, batch) -> (loss, aux)` is pure and comes from the
method (`bagssl_jax.methods`); the train step differentiates it, applies the
optax update, moves the EMA target (BYOL's and MoCo v3's target network,
DINO/SelfPatch's teacher) and folds the step into the rng. `train.py` jits
both `init` and `train_step` with explicit shardings.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from bagssl_jax import methods, models


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  # EMA target, None for methods without one: {"params"[, "batch_stats"]} of
  # the target network (the teacher), plus what the method's loss updates
  # itself (DINO / SelfPatch: "center" and "patch_center").
  target: Any = None


def make_init(model, tx, config):
  """init(rng) -> TrainState (jit it with out_shardings)."""
  method = methods.get(config.method)

  def init(rng):
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, jnp.zeros(models.input_shape(config)),
                           train=True, method="init_all")
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), rng=state_rng,
                      target=method.initial_target(params, variables, config))

  return init


def target_momentum(step, total_steps, base):
  """BYOL's schedule: 1 - (1 - base) (cos(pi step / total) + 1) / 2."""
  frac = jnp.minimum(step / max(total_steps, 1), 1.)
  return 1. - (1. - base) * (jnp.cos(jnp.pi * frac) + 1.) / 2.


def make_loss_fn(model, config, steps_per_epoch=1):
  """The method's pure loss of a batch from the host pipeline.

  loss_fn(params, state, rng, batch) -> (loss, (metrics, new batch_stats,
  target updates or None)); the target updates replace those entries of
  state.target.
  """
  return methods.get(config.method).loss_fn(model, config, steps_per_epoch)


def make_train_step(model, tx, lr_schedule, config, total_steps,
                    steps_per_epoch=None):
  """train_step(state, batch) -> (new state, metrics)."""
  if steps_per_epoch is None:
    steps_per_epoch = max(total_steps // max(config.num_epochs, 1), 1)
  loss_fn = make_loss_fn(model, config, steps_per_epoch)

  def train_step(state, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    (loss, (metrics, batch_stats, target_updates)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params, state, rng, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
               "lr": lr_schedule(state.step)}
    target = state.target
    if target is not None:
      tau = target_momentum(state.step, total_steps, config.target_momentum)
      target = {**target_updates, "params": jax.tree.map(
          lambda t, o: tau * t + (1. - tau) * o, target["params"],
          {k: params[k] for k in target["params"]})}
      metrics["target_momentum"] = tau
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state,
                         target=target), metrics

  return train_step

