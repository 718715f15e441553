"""The `Method` record, multi-view lifts and the joint-embedding loss functions.

A method module (vicreg.py, byol.py, ...) declares a `Method`: its loss over
N views, its loss keywords and their defaults (`config.loss.<name>`), whether
it trains a predictor and an EMA target network, its config checks and its
presets per dataset scale. The train step, the config defaults and checks and
the presets read these fields; none of them branches on a method's name.

Two loss functions cover the ResNet methods:
  `projector_loss_fn`  loss(z) on projector outputs (VICReg, SimCLR, ...);
  `target_loss_fn`     loss(p, z_target): online predictions against an EMA
                       target network's projections (BYOL, MoCo v3).
A method with another training scheme (DINO's multi-crop teacher) brings its
own `make_loss_fn`.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp

from bagssl_jax.data import augment


@dataclasses.dataclass(frozen=True)
class Method:
  """What the rest of the code needs to know about a method.

  name: `config.method`.
  loss: the loss over views. Without a target network
    `loss(z, multi_view, **kw)`, z (batch, views, dim); with one
    `loss(p, z_target, multi_view, **kw)`. Returns (loss, metrics).
  loss_defaults: `config.loss.<name>`: the keywords the run passes to it.
  extra_keywords: further keywords the loss accepts (a config may set them).
  backbone: "resnet" or "vit".
  predictor: the model has a predictor head after the projector.
  target: an EMA copy of the online network is kept in the train state and
    moved by the step with `config.target_momentum`'s cosine schedule.
  make_loss_fn: (method, model, config, steps_per_epoch) -> the pure loss
    function of the train step; None: `target_loss_fn` or
    `projector_loss_fn`.
  init_target: (params, variables, config) -> the initial target; None: a
    copy of the online network without its predictor.
  check: (config) -> None, raising ValueError with a one-line message.
  patch_head: the ViT has SelfPatch's patch-level head and aggregator.
  presets: scale ("fashion_mnist", "cifar", "imagenet") -> the method's
    recipe at that scale (see config/presets.py for the keys).
  """
  name: str
  loss: Optional[Callable]
  loss_defaults: Mapping[str, Any]
  extra_keywords: tuple = ()
  backbone: str = "resnet"
  predictor: bool = False
  target: bool = False
  make_loss_fn: Optional[Callable] = None
  init_target: Optional[Callable] = None
  check: Optional[Callable] = None
  patch_head: bool = False
  presets: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)

  @property
  def keywords(self) -> set:
    """The keywords `config.loss.<name>` may set."""
    return set(self.loss_defaults) | set(self.extra_keywords)

  def loss_fn(self, model, config, steps_per_epoch=1):
    """The pure loss function of the train step (see `projector_loss_fn`)."""
    make = self.make_loss_fn or (target_loss_fn if self.target
                                 else projector_loss_fn)
    return make(self, model, config, steps_per_epoch)

  def initial_target(self, params, variables, config):
    if not self.target:
      return None
    if self.init_target is not None:
      return self.init_target(params, variables, config)
    return copy_online(params, variables)


def copy_online(params, variables):
  """The target network at init: the online network without its predictor."""
  return {"params": {k: v for k, v in params.items() if k != "predictor"},
          "batch_stats": {k: v for k, v in variables.get(
              "batch_stats", {}).items() if k != "predictor"}}


# ------------------------------------------------------- loss functions ---
def gather_batch(x):
  """`x` replicated on every device of the step's mesh (an all-gather of the
  batch-sharded rows), when the step is traced under one
  (`sharding.traced_under`). A loss over the global batch then runs whole on
  each device: its collectives are this gather (n x d) instead of XLA's
  all-reduce of partial sums (VICReg's and Barlow Twins' d x d matrices), and
  its gradient goes back to the shards as a slice, with no communication."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return x
  return jax.lax.with_sharding_constraint(x, jax.sharding.PartitionSpec())


def split_columns(m):
  """`m` (..., d) with its last axis split over every device of the step's
  mesh, when traced under one and d divides evenly. For a d x d statistic of
  a gathered z (VICReg's covariance, Barlow Twins' cross-correlation) each
  device then computes only its column block, and what the backward sends
  back is the n x d gradient of z, not d x d partial sums."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1 or m.shape[-1] % mesh.size:
    return m
  spec = (None,) * (m.ndim - 1) + (tuple(mesh.axis_names),)
  return jax.lax.with_sharding_constraint(m, jax.sharding.PartitionSpec(*spec))


def _online(model, params, state, rng, batch, config):
  """The batch's augmented views x and the online network's projections z
  (batch, views, dim), with the updated BatchNorm statistics."""
  x = augment.train_views(rng, batch, config)
  b = batch["label"].shape[0]
  (_, z), new_vars = model.apply(
      {"params": params, "batch_stats": state.batch_stats}, x, train=True,
      mutable=["batch_stats"])
  return x, gather_batch(z.reshape(b, -1, z.shape[-1])), new_vars["batch_stats"]


def projector_loss_fn(method, model, config, steps_per_epoch=1):
  """loss_fn(params, state, rng, batch) -> (loss, (metrics, batch_stats,
  None)): the method's loss on the projector outputs of the batch's views
  (augment.train_views)."""
  del steps_per_epoch
  kw = dict(config.loss.get(method.name) or {})
  multi_view = config.get("multi_view", "pairs")

  def loss_fn(params, state, rng, batch):
    _, z, batch_stats = _online(model, params, state, rng, batch, config)
    loss, metrics = method.loss(z, multi_view, **kw)
    return loss, (metrics, batch_stats, None)

  return loss_fn


def target_loss_fn(method, model, config, steps_per_epoch=1):
  """As `projector_loss_fn` for a method with a predictor and an EMA target:
  the loss of the online predictions p against the target's projections of
  the same views. The target's updates ({"batch_stats"}) are returned for
  the step to merge into state.target."""
  del steps_per_epoch
  kw = dict(config.loss.get(method.name) or {})
  multi_view = config.get("multi_view", "pairs")

  def loss_fn(params, state, rng, batch):
    x, z, batch_stats = _online(model, params, state, rng, batch, config)
    p, pred_vars = model.apply(
        {"params": params, "batch_stats": batch_stats},
        z.reshape(-1, z.shape[-1]), train=True, mutable=["batch_stats"],
        method="predict")
    (_, z_target), target_vars = model.apply(
        state.target, x, train=True, mutable=["batch_stats"])
    loss, metrics = method.loss(gather_batch(p.reshape(z.shape)),
                                gather_batch(z_target.reshape(z.shape)),
                                multi_view, **kw)
    return loss, (metrics, pred_vars["batch_stats"],
                  {"batch_stats": target_vars["batch_stats"]})

  return loss_fn


# --------------------------------------------------------- multi-view ---
def average(results):
  """Mean of (loss, metrics) pairs."""
  loss = sum(r[0] for r in results) / len(results)
  metrics = jax.tree.map(lambda *m: sum(m) / len(results),
                         *[r[1] for r in results])
  return loss, metrics


def all_pairs(pair_loss: Callable) -> Callable:
  """Lifts a two-view loss to (batch, n_views, dim): mean over view pairs i<j."""

  def loss_fn(z, **kwargs):
    pairs = list(itertools.combinations(range(z.shape[1]), 2))
    if not pairs:
      raise ValueError("a joint-embedding loss needs at least 2 views")
    return average([pair_loss(z[:, i], z[:, j], **kwargs) for i, j in pairs])

  return loss_fn


def to_mean(pair_loss: Callable) -> Callable:
  """Lifts a two-view loss to (batch, n_views, dim) in EMP-SSL's form: each
  view is paired with the mean of the image's views; mean over views."""

  def loss_fn(z, **kwargs):
    mean = jnp.mean(z, axis=1)
    return average([pair_loss(z[:, v], mean, **kwargs)
                    for v in range(z.shape[1])])

  return loss_fn


MULTI_VIEW = {"pairs": all_pairs, "mean": to_mean}


def over_views(pair_loss: Callable) -> Callable:
  """loss(z, multi_view="pairs", **kw) of a two-view loss(z1, z2, **kw): the
  `config.multi_view` form over the views of z (batch, views, dim)."""

  def loss_fn(z, multi_view="pairs", **kwargs):
    return MULTI_VIEW[multi_view](pair_loss)(z, **kwargs)

  loss_fn.pair_loss = pair_loss
  return loss_fn


def directed_pairs(pair_loss: Callable, name: str) -> Callable:
  """loss(p, z_target, multi_view="pairs", scale=2.0, **kw) of a
  predictor-vs-target loss(p, z, **kw), both (batch, views, dim): `scale` x
  the mean over every ordered pair of distinct views (prediction of view i
  against the target of view j; "pairs"), or over views, each prediction
  against the mean target ("mean"). The target gets no gradient. Metrics
  are the pairs' means, the loss itself (scaled) under `name`."""

  def loss_fn(p, z_target, multi_view="pairs", scale=2.0, **kwargs):
    z_target = jax.lax.stop_gradient(z_target)
    n = p.shape[1]
    if multi_view == "mean":
      mean = jnp.mean(z_target, axis=1)
      results = [pair_loss(p[:, v], mean, **kwargs) for v in range(n)]
    else:
      results = [pair_loss(p[:, i], z_target[:, j], **kwargs)
                 for i in range(n) for j in range(n) if i != j]
    loss, metrics = average(results)
    return scale * loss, {**metrics, name: scale * loss}

  loss_fn.pair_loss = pair_loss
  return loss_fn


# ------------------------------------------------------------ helpers ---
def l2_normalize(x, eps=1e-12):
  return x / jnp.sqrt(jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True), eps))


def off_diagonal_sq_sum(m):
  return jnp.sum(m**2) - jnp.sum(jnp.diagonal(m)**2)
