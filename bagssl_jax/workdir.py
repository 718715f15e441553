"""Workdir safety: one run per workdir (lock file), and no silent resume of a
workdir whose `config.json` trained another model or on other data.

  with workdir.claim(path, config):  # WORKDIR/.lock (owner pid, host, boot);
    ...                              # config.json checked, then written

`check_config` raises WorkdirError listing the fields that differ (unless
`config.allow_config_change`); `write_config` keeps an older config.json
that differs as config.<time>.json.

The workdir may be a bucket (`gs://...`): every file goes through `paths`.
A lock left by a dead process on the same host (pid gone, or the machine
rebooted), or whose heartbeat is older than LEASE_SECONDS on any host, is
stale and taken over with a warning; a live one refuses the run.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from bagssl_jax import config as config_lib
from bagssl_jax import paths

LOCK_NAME = ".lock"

# Fields that do not change what is trained (the model, its inputs and the
# optimisation of a step): they may differ on resume. Every other field, and
# any field added later, must match `config.json` unless
# `allow_config_change=True`. total_steps / num_epochs may grow a run.
FREE_FIELDS = ("total_steps", "num_epochs", "checkpoint_every_steps",
               "keep_checkpoints", "log_every_seconds", "run_eval",
               "allow_config_change", "data.num_workers", "data.read_threads",
               "data.prefetch", "data.device_prefetch", "data.test_split", "data.bad_images",
               "param_sharding", "fsdp_min_size")
FREE_PREFIXES = ("eval.", "mesh.")


class WorkdirError(ValueError):
  """A workdir that is in use or cannot be written; one-line message."""


# ---------------------------------------------------------------- lock ---
# The lock is a file created only if absent (paths.create_exclusive: a hard
# link locally, a generation-0 precondition on GCS). Its owner rewrites its
# `heartbeat` every HEARTBEAT_SECONDS; a lock whose heartbeat is older than
# LEASE_SECONDS is stale on any host (a killed VM, a requeued SLURM job on
# another node), and on the owner's own host a lock whose process is gone
# (or whose machine rebooted) is stale at once.
HEARTBEAT_SECONDS = 60
LEASE_SECONDS = 600


def _boot_id():
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      return f.read().strip()
  except OSError:
    return ""


def _start_time(pid):
  """Start time of `pid` in clock ticks since boot (Linux), or None."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return int(f.read().rsplit(")", 1)[1].split()[19])
  except (OSError, IndexError, ValueError):
    return None


def _owner():
  pid = os.getpid()
  now = time.time()
  return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(),
          "start_time": _start_time(pid), "since": now, "heartbeat": now}


def _is_stale(owner):
  """True when the lock's owner is certainly gone."""
  beat = owner.get("heartbeat")
  if isinstance(beat, (int, float)) and time.time() - beat > LEASE_SECONDS:
    return True  # no heartbeat for a lease: its owner is gone
  if owner.get("host") != socket.gethostname():
    return False
  if owner.get("boot_id") and _boot_id() and owner["boot_id"] != _boot_id():
    return True  # the machine rebooted since
  pid = owner.get("pid")
  if not isinstance(pid, int) or pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:
    pass  # alive, another user's
  start = _start_time(pid)
  return (owner.get("start_time") is not None and start is not None
          and start != owner["start_time"])  # the pid was reused


def _read_owner(path):
  try:
    return json.loads(paths.read_text(path))
  except (OSError, ValueError):
    return None


def acquire(workdir):
  """Creates WORKDIR/.lock atomically; raises WorkdirError if in use."""
  if paths.exists(workdir) and not paths.is_dir(workdir):
    raise WorkdirError(f"--workdir {workdir} exists and is not a directory")
  path = paths.join(workdir, LOCK_NAME)
  try:
    paths.makedirs(workdir)
    for _ in range(2):
      try:
        paths.create_exclusive(path, json.dumps(_owner()))
        return path
      except paths.ExistsError:
        owner = _read_owner(path)
        if owner is None or _is_stale(owner):
          logging.warning("workdir %s: removing the stale lock of %s", workdir,
                          _describe(owner))
          paths.remove(path)
          continue
        raise WorkdirError(
            f"workdir {workdir} is in use by {_describe(owner)} (lock file "
            f"{path}); if that run is gone, delete the lock file") from None
    raise WorkdirError(f"cannot take the lock {path}")
  except (OSError, ImportError) as e:
    raise WorkdirError(f"cannot write to --workdir {workdir}: "
                       f"{getattr(e, 'strerror', None) or e}") from None


def _is_mine(owner):
  return bool(owner) and owner.get("pid") == os.getpid() and (
      owner.get("host") == socket.gethostname())


def release(path):
  if _is_mine(_read_owner(path)):
    with contextlib.suppress(OSError):
      paths.remove(path)


class _Heartbeat:
  """Rewrites the lock's heartbeat every HEARTBEAT_SECONDS (a daemon thread)."""

  def __init__(self, path):
    self._path, self._stop = path, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True,
                                    name="workdir-heartbeat")
    self._thread.start()

  def _run(self):
    while not self._stop.wait(HEARTBEAT_SECONDS):
      owner = _read_owner(self._path)
      if not _is_mine(owner):
        logging.warning("workdir lock %s is no longer this run's", self._path)
        return
      owner["heartbeat"] = time.time()
      with contextlib.suppress(OSError):
        paths.write_text(self._path, json.dumps(owner))

  def stop(self):
    self._stop.set()
    self._thread.join(timeout=10)


@contextlib.contextmanager
def claim(workdir, config):
  """Holds the workdir for a run: process 0 takes WORKDIR/.lock, checks the
  config against config.json and writes it; every process learns whether
  that worked (so none goes on alone). Releases the lock on exit."""
  path, error = None, None
  if jax.process_index() == 0:
    try:
      path = acquire(workdir)
      check_config(workdir, config)
      write_config(workdir, config)
    except (WorkdirError, OSError) as e:
      error = e if isinstance(e, WorkdirError) else WorkdirError(
          f"cannot write to --workdir {workdir}: {e}")
      if path:
        release(path)
  if jax.process_count() > 1:
    failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
    if failed and error is None:
      error = WorkdirError(f"process 0 could not claim workdir {workdir} "
                           "(see its error)")
  if error is not None:
    raise error
  heartbeat = _Heartbeat(path) if path else None
  try:
    yield path
  finally:
    if heartbeat:
      heartbeat.stop()
    if path:
      release(path)


def _describe(owner):
  if not owner:
    return "an unreadable lock"
  since = time.strftime("%Y-%m-%d %H:%M:%S",
                        time.localtime(owner.get("since", 0)))
  return f"pid {owner.get('pid')} on {owner.get('host')} (since {since})"


# -------------------------------------------------------------- config ---
def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = list(v) if isinstance(v, tuple) else v
  return out


def _is_free(field):
  return field in FREE_FIELDS or field.startswith(FREE_PREFIXES)


def read_saved_config(workdir):
  """The workdir's config.json as a flat dict, or None if there is none."""
  path = paths.join(workdir, "config.json")
  if not paths.exists(path):
    return None
  try:
    return _flat(json.loads(paths.read_text(path)))
  except (OSError, ValueError) as e:
    raise WorkdirError(f"cannot read {path}: {e} (move it away to start a new "
                       "run in this workdir)") from None


def config_changes(saved, config):
  """[(field, saved value, new value)] of the fields that change the model
  or data. A field the saved config lacks (added to the code since) counts
  as its default."""
  new = _flat(json.loads(config_lib.to_json(config)))
  saved = {**_flat(json.loads(config_lib.to_json(config_lib.base_config()))),
           **saved}
  return [(k, saved.get(k, "<absent>"), new.get(k, "<absent>"))
          for k in sorted(set(saved) | set(new))
          if not _is_free(k) and saved.get(k) != new.get(k)]


def check_config(workdir, config):
  """Refuses a config that differs from WORKDIR/config.json in fields that
  change the model or data, unless `config.allow_config_change`."""
  saved = read_saved_config(workdir)
  if saved is None:
    return []
  changes = config_changes(saved, config)
  listed = ", ".join(f"config.{k}: {a!r} -> {b!r}" for k, a, b in changes)
  if changes and not config.get("allow_config_change", False):
    raise WorkdirError(
        f"workdir {workdir} holds a run with another config ({listed}); use "
        "another --workdir, or --config.allow_config_change=True to resume")
  if changes:
    logging.warning("workdir %s: config changed (%s)", workdir, listed)
  return changes


def write_config(workdir, config):
  """Writes WORKDIR/config.json atomically; an older, different one is kept
  as config.<time>.json."""
  path = paths.join(workdir, "config.json")
  text = config_lib.to_json(config)
  if paths.exists(path):
    old = paths.read_text(path)
    if old == text:
      return
    paths.write_text(paths.join(
        workdir, f"config.{time.strftime('%Y%m%d-%H%M%S')}.json"), old)
  paths.write_text(path, text)


def drop_metrics_after(workdir, step):
  """Drops metrics.jsonl rows past `step` (logged by a run killed before
  its next checkpoint; the resumed run logs those steps again)."""
  path = paths.join(workdir, "metrics.jsonl")
  if jax.process_index() != 0 or not paths.exists(path):
    return
  lines = paths.read_text(path).splitlines(keepends=True)
  keep = [l for l in lines if not l.strip() or _row_step(l) <= step]
  if len(keep) != len(lines):
    paths.write_text(path, "".join(keep))


def _row_step(line):
  try:
    return int(json.loads(line).get("step", 0))
  except (ValueError, AttributeError):
    return 0
