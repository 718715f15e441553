"""Optimizers (optax) with linear warmup + cosine decay.

The peak learning rate is `base_lr * batch_size / 256` (the VICReg recipe).
LARS excludes biases and normalisation parameters (1-D) from weight decay
and trust-ratio adaptation. `predictor_lr_mult` scales the updates of BYOL's
predictor (the top-level "predictor" parameters), the relative predictor
learning rate that Tian, Chen, Ganguli 2021 ("Understanding self-supervised
learning dynamics without contrastive pairs") analyse among BYOL's factors.
"""
from __future__ import annotations

import jax
import optax


OPTIMIZERS = ("lars", "sgd", "adamw")


def _is_matrix(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def schedule(opt_config, batch_size, total_steps, steps_per_epoch):
  peak = opt_config.base_lr * batch_size / 256
  warmup = min(int(opt_config.warmup_epochs * steps_per_epoch),
               max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      0.0, peak, warmup, max(total_steps, warmup + 1),
      end_value=peak * opt_config.end_lr_factor)


def make_optimizer(opt_config, batch_size, total_steps, steps_per_epoch):
  """Returns (optax transformation, learning-rate schedule)."""
  lr = schedule(opt_config, batch_size, total_steps, steps_per_epoch)
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
  mult = opt_config.get("predictor_lr_mult", 1.0)
  if mult != 1.0:
    tx = optax.chain(tx, optax.masked(optax.scale(mult), _is_predictor))
  return tx, lr


def _is_predictor(params):
  return {k: jax.tree.map(lambda _, k=k: k == "predictor", v)
          for k, v in params.items()}
