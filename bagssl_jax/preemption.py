"""Preemption: stop at a step every process agrees on, so that the loop can
save a checkpoint there and exit 0.

One process: a SIGTERM handler sets a flag that `reached(step)` returns.
Several processes (`jax.distributed.initialize`): JAX's preemption sync
manager already listens for SIGTERM (the scheduler's notice) in every process
and agrees on a step; `reached(step)` is
`multihost_utils.reached_preemption_sync_point(step)`, called every step.
"""
from __future__ import annotations

import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils


class PreemptionWatcher:
  """`reached(step)` is True once the run should checkpoint and stop."""

  def __init__(self):
    self._flag = False
    self._previous = None
    self._multi = jax.process_count() > 1
    if self._multi:
      pass  # JAX's own SIGTERM handler must stay in place
    elif threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    else:
      logging.warning("preemption: not the main thread; SIGTERM not handled")

  def _on_sigterm(self, signum, frame):
    del signum, frame
    self._flag = True

  def reached(self, step) -> bool:
    if self._multi:
      try:
        return multihost_utils.reached_preemption_sync_point(int(step))
      except RuntimeError as e:  # JAX's preemption service is disabled
        logging.warning("preemption: %s; SIGTERM will not save a checkpoint",
                        e)
        self._multi = None
    return self._flag

  def close(self):
    """Gives SIGTERM back to its previous handler."""
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
