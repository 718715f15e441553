"""Train state, the pure loss function and the train step.

`loss_fn(params, state, rng, batch) -> (loss, aux)` is pure; the train step
differentiates it, applies the optax update, moves the EMA target (BYOL's
target network, DINO/SelfPatch's teacher) and folds the step into the rng.
`train.py` jits both `init` and `train_step` with explicit shardings. The
DINO / SelfPatch loss lives in `dino.py`, its ViT in `vit.py`.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bagssl_jax import augment, dino, losses, models, vit

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  # EMA target, None for methods without one. BYOL: {"params",
  # "batch_stats"} of the target network; DINO / SelfPatch: {"params"} of the
  # teacher, "center" (and "patch_center"): the EMA centres of its outputs.
  target: Any = None


def uses_target(config) -> bool:
  return config.method in ("byol", "dino", "selfpatch")


def is_vit(config) -> bool:
  return config.model.get("name", "resnet") in vit.VIT_SIZES


def make_model(config):
  m = config.model
  if is_vit(config):
    dim, depth, heads = vit.vit_size(m)
    return vit.ViTSSLModel(
        patch=m.vit_patch, dim=dim, depth=depth, heads=heads,
        image_size=config.multicrop.global_size, head_hidden=m.head_hidden,
        head_bottleneck=m.head_bottleneck, out_dim=m.out_dim,
        selfpatch=config.method == "selfpatch", patch_out_dim=m.patch_out_dim,
        agg_depth=m.agg_depth, representation=m.representation,
        dtype=DTYPES[config.dtype])
  return models.BagSSLModel(
      depth=m.depth, width=m.width, cifar_stem=m.cifar_stem,
      projector_dims=tuple(m.projector_dims),
      predictor_hidden=m.predictor_hidden if uses_target(config) else 0,
      dtype=DTYPES[config.dtype],
      stage_widths=tuple(m.get("stage_widths", ())),
      expand_width=m.get("expand_width", 0))


def input_shape(config):
  size = config.multicrop.global_size if is_vit(config) else config.input_size
  return (1, size, size, config.data.channels)


def make_init(model, tx, config):
  """init(rng) -> TrainState (jit it with out_shardings)."""

  def init(rng):
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, jnp.zeros(input_shape(config)),
                           train=True, method="init_all")
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    target = None
    if config.method in ("dino", "selfpatch"):  # teacher = student at init
      m = config.model
      target = {"params": params, "center": jnp.zeros((m.out_dim,))}
      if config.method == "selfpatch":
        target["patch_center"] = jnp.zeros((m.patch_out_dim,))
    elif uses_target(config):  # the target starts as a copy of the online net
      target = {"params": {k: v for k, v in params.items()
                           if k != "predictor"},
                "batch_stats": {k: v for k, v in variables[
                    "batch_stats"].items() if k != "predictor"}}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=batch_stats,
                      opt_state=tx.init(params), rng=state_rng, target=target)

  return init


def target_momentum(step, total_steps, base):
  """BYOL's schedule: 1 - (1 - base) (cos(pi step / total) + 1) / 2."""
  frac = jnp.minimum(step / max(total_steps, 1), 1.)
  return 1. - (1. - base) * (jnp.cos(jnp.pi * frac) + 1.) / 2.


def make_loss_fn(model, config, steps_per_epoch=1):
  """Pure SSL loss of a batch from the host pipeline (see augment.train_views).

  Returns (loss, (metrics, new batch_stats, target updates or None)); the
  target updates (BYOL: {"batch_stats"}; DINO: the centres) replace those
  entries of state.target.
  """
  if config.method in ("dino", "selfpatch"):
    return dino.make_loss_fn(model, config, steps_per_epoch)
  loss_kwargs = dict(config.loss.get(config.method) or {})
  multi_view = config.get("multi_view", "pairs")

  def loss_fn(params, state, rng, batch):
    x = augment.train_views(rng, batch, config)
    b = batch["label"].shape[0]
    (_, z), new_vars = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        mutable=["batch_stats"])
    z = z.reshape(b, -1, z.shape[-1])
    if not uses_target(config):
      loss, metrics = losses.method_loss(config.method, z, multi_view,
                                         **loss_kwargs)
      return loss, (metrics, new_vars["batch_stats"], None)
    p, pred_vars = model.apply(
        {"params": params, "batch_stats": new_vars["batch_stats"]},
        z.reshape(-1, z.shape[-1]), train=True, mutable=["batch_stats"],
        method="predict")
    (_, z_target), target_vars = model.apply(
        state.target, x, train=True, mutable=["batch_stats"])
    loss, metrics = losses.byol_views(
        p.reshape(z.shape), z_target.reshape(z.shape), multi_view,
        **loss_kwargs)
    return loss, (metrics, pred_vars["batch_stats"],
                  {"batch_stats": target_vars["batch_stats"]})

  return loss_fn


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


def count_params(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
