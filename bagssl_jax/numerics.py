"""NaN guard: a non-finite loss or gradient norm stops the run.

`FiniteGuard.watch(step, metrics)` checks the *previous* step's metrics (that
step has finished by the time the next is dispatched, so the host never waits
on the step it just queued); `check_now(step, state)` checks the newest
step's metrics and every float in the state, and runs before every checkpoint
save, so a non-finite state is never saved.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(RuntimeError):
  """Training diverged; the message names the step and the loss terms."""


class FiniteGuard:

  def __init__(self):
    self._pending = None  # (step, metrics) not checked yet

  def watch(self, step, metrics):
    previous, self._pending = self._pending, (step, metrics)
    if previous is not None:
      _check(*previous)

  def check_now(self, step=None, state=None):
    pending, self._pending = self._pending, None
    if pending is not None:
      _check(*pending)
    if state is not None and not all_finite(state):
      raise NonFiniteError(f"non-finite values in the train state at step "
                           f"{step} (loss and gradient norm were finite)")


@jax.jit
def _all_finite(tree):
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def all_finite(tree) -> bool:
  """Whether every float array in `tree` is finite (one jitted reduction)."""
  return bool(_all_finite(tree))


def _check(step, metrics):
  loss, grad_norm = jax.device_get((metrics["loss"], metrics["grad_norm"]))
  if np.isfinite(loss) and np.isfinite(grad_norm):
    return
  terms = " ".join(f"{k}={float(v):.6g}" for k, v in sorted(
      jax.device_get(metrics).items()))
  raise NonFiniteError(f"non-finite loss or gradient norm at step {step}: "
                       f"{terms}")
