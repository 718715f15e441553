"""Device prefetch: batches arrive in order on the mesh, the checkpointed
iterator position is that of the last batch handed out (not of the thread's
read-ahead), the wait for a slow input is measured, and errors surface."""
import json
import time

import jax
import numpy as np
import pytest

from bagssl_jax import prefetch, sharding


class _Counter:
  """A grain-like iterator of (8, 2) batches; `delay` seconds per batch."""

  def __init__(self, delay=0.0, fail_at=None):
    self.i, self.delay, self.fail_at = 0, delay, fail_at

  def __next__(self):
    time.sleep(self.delay)
    if self.i == self.fail_at:
      raise ValueError(f"bad image in batch {self.i}")
    self.i += 1
    return np.full((8, 2), self.i - 1, np.float32)

  def get_state(self):
    return {"next_index": self.i}


def _mesh():
  return sharding.make_mesh({"data": -1, "fsdp": 1})


def test_order_sharding_and_checkpointed_position():
  it = _Counter()
  batches = prefetch.DevicePrefetch(it, _mesh(), size=2)
  for k in range(5):
    b = next(batches)
    assert isinstance(b, jax.Array) and len(b.sharding.device_set) == 4
    assert float(b[0, 0]) == k
    saved = json.loads(batches.checkpoint_iterator().get_state())
    assert saved == {"next_index": k + 1}  # not the read-ahead position
  time.sleep(0.2)
  assert it.i > 5  # the thread did read ahead
  batches.close()


def test_input_wait_is_measured_and_errors_surface():
  batches = prefetch.DevicePrefetch(_Counter(delay=0.05), _mesh())
  for _ in range(6):
    next(batches)
  assert batches.wait_seconds >= 0.15  # input-bound: the loop waited
  batches.close()
  failing = prefetch.DevicePrefetch(_Counter(fail_at=2), _mesh())
  next(failing), next(failing)
  with pytest.raises(ValueError, match="bad image in batch 2"):
    next(failing)
  failing.close()
