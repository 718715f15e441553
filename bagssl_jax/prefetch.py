"""Device prefetch: global batches placed on the mesh `size` steps ahead by a
background thread (as big_vision and the flax examples do), so the step never
waits on the host pipeline's last copy to the devices.

The thread reads ahead of training, so the grain iterator is ahead of the
step too: each batch travels with the iterator state right after it, and
`checkpoint_iterator()` gives that state of the last batch handed out, which
is what a checkpoint must save for an exact resume.

  prefetch = DevicePrefetch(data_iter, mesh)
  batch = next(prefetch)                       # blocks only if input-bound
  checkpoints.save(mgr, step, state, prefetch.checkpoint_iterator())
"""
from __future__ import annotations

import json
import queue
import threading
import time

from bagssl_jax import sharding


class _Failed:

  def __init__(self, error):
    self.error = error


class _IteratorState:
  """What grain's checkpoint handler saves: for an object that is not a
  DatasetIterator, the JSON bytes of `get_state()` (the same file a
  DatasetIterator's state gives)."""

  def __init__(self, state):
    self._state = state

  def get_state(self):
    return json.dumps(self._state, indent=4).encode()


class DevicePrefetch:
  """Iterates global device batches of `data_iter` (a grain iterator)."""

  def __init__(self, data_iter, mesh, size=2):
    self._it, self._mesh = data_iter, mesh
    self._queue = queue.Queue(maxsize=max(size, 1))
    self._stop = threading.Event()
    self._state = data_iter.get_state()
    self.wait_seconds = 0.0  # time `__next__` spent blocked, in total
    self._thread = threading.Thread(target=self._fill, daemon=True,
                                    name="device-prefetch")
    self._thread.start()

  def _fill(self):
    try:
      while not self._stop.is_set():
        host = next(self._it)
        state = self._it.get_state()
        self._put((sharding.global_batch(host, self._mesh), state))
    except BaseException as e:  # pylint: disable=broad-except
      self._put(_Failed(e))  # raised in the training thread

  def _put(self, item):
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def __iter__(self):
    return self

  def __next__(self):
    start = time.perf_counter()
    item = self._queue.get()
    self.wait_seconds += time.perf_counter() - start
    if isinstance(item, _Failed):
      raise item.error
    batch, self._state = item
    return batch

  def checkpoint_iterator(self):
    """The iterator position after the last batch handed out (for
    `grain.checkpoint.CheckpointSave`)."""
    return _IteratorState(self._state)

  def close(self):
    self._stop.set()
    while True:  # unblock a pending put
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout=10)
