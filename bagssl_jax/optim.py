"""Optimizers (optax) with linear warmup + cosine decay.

The peak learning rate is `base_lr * batch_size / 256` (the VICReg recipe).
LARS excludes biases and normalisation parameters (1-D) from weight decay
and trust-ratio adaptation. `predictor_lr_mult` scales the updates of BYOL's
predictor (the top-level "predictor" parameters), the relative predictor
learning rate that Tian, Chen, Ganguli 2021 ("Understanding self-supervised
learning dynamics without contrastive pairs") analyse among BYOL's factors.
`predictor_constant_lr` keeps the predictor's lr at its peak after warm-up
instead of decaying it (SimSiam's `--fix-pred-lr`); the predictor then has its
own optimizer (`optax.multi_transform`), with the same settings.
"""
from __future__ import annotations

import jax
import optax


OPTIMIZERS = ("lars", "sgd", "adamw")


def _is_matrix(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _peak_and_warmup(opt_config, batch_size, total_steps, steps_per_epoch):
  peak = opt_config.base_lr * batch_size / 256
  warmup = min(int(opt_config.warmup_epochs * steps_per_epoch),
               max(total_steps - 1, 0))
  return peak, warmup


def schedule(opt_config, batch_size, total_steps, steps_per_epoch):
  """Linear warm-up to base_lr * batch_size / 256, then cosine decay."""
  peak, warmup = _peak_and_warmup(opt_config, batch_size, total_steps,
                                  steps_per_epoch)
  return optax.warmup_cosine_decay_schedule(
      0.0, peak, warmup, max(total_steps, warmup + 1),
      end_value=peak * opt_config.end_lr_factor)


def make_optimizer(opt_config, batch_size, total_steps, steps_per_epoch):
  """Returns (optax transformation, learning-rate schedule)."""
  lr = schedule(opt_config, batch_size, total_steps, steps_per_epoch)
  tx = _optimizer(opt_config, lr)
  mult = opt_config.get("predictor_lr_mult", 1.0)
  if opt_config.get("predictor_constant_lr", False):
    peak, warmup = _peak_and_warmup(opt_config, batch_size, total_steps,
                                    steps_per_epoch)
    pred_lr = (optax.linear_schedule(0.0, mult * peak, warmup) if warmup
               else optax.constant_schedule(mult * peak))
    tx = optax.multi_transform(
        {"rest": tx, "predictor": _optimizer(opt_config, pred_lr)},
        lambda params: jax.tree.map(
            lambda p: "predictor" if p else "rest", _is_predictor(params)))
  elif mult != 1.0:
    tx = optax.chain(tx, optax.masked(optax.scale(mult), _is_predictor))
  return tx, lr


def _optimizer(opt_config, lr):
  """The optax optimizer `opt_config.name` on the schedule `lr`."""
  name, wd = opt_config.name, opt_config.weight_decay
  if name == "lars":
    tx = optax.lars(lr, weight_decay=wd, weight_decay_mask=_is_matrix,
                    trust_ratio_mask=_is_matrix, momentum=opt_config.momentum)
  elif name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(wd, _is_matrix),
                     optax.sgd(lr, momentum=opt_config.momentum))
  elif name == "adamw":
    tx = optax.adamw(lr, weight_decay=wd, mask=_is_matrix)
  else:
    raise ValueError(f"config.optimizer.name: unknown optimizer '{name}' "
                     "(choose from lars, sgd, adamw)")
  return tx


def _is_predictor(params):
  return {k: jax.tree.map(lambda _, k=k: k == "predictor", v)
          for k, v in params.items()}
