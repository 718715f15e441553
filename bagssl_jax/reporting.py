"""What a user sees of a run: progress lines, metrics.jsonl, TensorBoard
events and the loss-curve PNG, all under WORKDIR (process 0 only; a local
folder or a bucket)."""
from __future__ import annotations

import io
import time

import jax
import numpy as np

from bagssl_jax import paths


class Reporter:
  """Writes scalars to WORKDIR/metrics.jsonl and WORKDIR/tensorboard/."""

  def __init__(self, workdir, total_steps, patches_per_step, every_seconds=5.):
    self.workdir, self.total_steps = workdir, total_steps
    self.patches_per_step, self.every = patches_per_step, every_seconds
    self.enabled = jax.process_index() == 0
    self._last_time = self._last_step = None
    self._batches, self._last_wait = None, 0.0
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(paths.join(workdir, "tensorboard"))
      self._jsonl = paths.JsonlAppender(paths.join(workdir, "metrics.jsonl"))

  def start(self, step, batches=None):
    """From `step`; `batches` (a DevicePrefetch) tells the input wait."""
    self._last_time, self._last_step = time.time(), step
    self._batches = batches
    self._last_wait = batches.wait_seconds if batches else 0.0

  def due(self):
    return time.time() - self._last_time >= self.every

  def write(self, step, metrics):
    """Logs `metrics` (device scalars) at `step` and prints a progress line."""
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    now = time.time()  # after the fetch: steps dispatched ahead are finished
    elapsed = max(now - self._last_time, 1e-9)
    rate = (step - self._last_step) * self.patches_per_step / elapsed
    # Share of the wall time the loop waited for input: ~0 when the devices
    # are the bottleneck, near 1 when the host pipeline is.
    waited = self._batches.wait_seconds if self._batches else 0.0
    input_wait = min((waited - self._last_wait) / elapsed, 1.0)
    self._last_time, self._last_step, self._last_wait = now, step, waited
    if not self.enabled:
      return
    eta = (self.total_steps - step) * self.patches_per_step / max(rate, 1e-9)
    terms = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())
                     if k not in ("loss", "lr"))
    print(f"step {step}/{self.total_steps} loss={metrics['loss']:.4f} "
          f"{terms} lr={metrics['lr']:.3g} {rate:,.0f} patches/s "
          f"input {input_wait:.0%} ETA {hms(eta)}", flush=True)
    self._jsonl.write({"step": step, **metrics, "patches_per_s": rate,
                       "input_wait_share": input_wait})
    self._jsonl.flush()
    for k, v in metrics.items():
      self._tb.add_scalar(f"train/{k}", v, step)
    self._tb.add_scalar("train/patches_per_s", rate, step)
    self._tb.add_scalar("train/input_wait_share", input_wait, step)

  def write_heldout(self, step, metrics):
    """Logs the loss terms on the held-out batch as `heldout_<term>`."""
    metrics = {f"heldout_{k}": float(v)
               for k, v in jax.device_get(metrics).items()}
    if not self.enabled:
      return
    print(f"step {step}/{self.total_steps} held-out " + " ".join(
        f"{k[8:]}={v:.4g}" for k, v in sorted(metrics.items())), flush=True)
    self._jsonl.write({"step": step, **metrics})
    self._jsonl.flush()
    for k, v in metrics.items():
      self._tb.add_scalar(f"heldout/{k[8:]}", v, step)

  def flush(self):
    """Writes metrics.jsonl out now (on a bucket it is otherwise rewritten
    at most every 30 s)."""
    if self.enabled:
      self._jsonl.flush(force=True)

  def write_monitor(self, step, metrics, what=""):
    """Logs monitor scalars (e.g. `knn_monitor`, evaluation/monitor.py)."""
    if not self.enabled:
      return
    print(f"step {step}/{self.total_steps} " + " ".join(
        f"{k}={v:.4f}" for k, v in sorted(metrics.items())) +
          (f" ({what})" if what else ""), flush=True)
    self._jsonl.write({"step": step, **metrics})
    self._jsonl.flush()
    for k, v in metrics.items():
      self._tb.add_scalar(f"monitor/{k.replace('_monitor', '')}", v, step)

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      plot_loss_curve(self.workdir)


def hms(seconds):
  """H:MM:SS (? for an unknown time)."""
  if seconds == float("inf"):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """A pass over `total` items: `update(n)` adds n done and, at most every
  `every` seconds (and with `final=True`), calls
  `emit(done, total, rate per second, eta seconds, final)`."""

  def __init__(self, total, emit, every=60.):
    self.total, self.emit, self.every = total, emit, every
    self.done, self.t0 = 0, time.perf_counter()
    self.last = self.t0

  def update(self, n, final=False):
    self.done += n
    now = time.perf_counter()
    if not final and now - self.last < self.every:
      return
    self.last = now
    rate = self.done / max(now - self.t0, 1e-9)
    eta = (self.total - self.done) / rate if rate else float("inf")
    self.emit(self.done, self.total, rate, eta, final)


def plot_loss_curve(workdir):
  """WORKDIR/loss_curve.png from metrics.jsonl (total and the loss terms)."""
  rows = paths.read_jsonl(paths.join(workdir, "metrics.jsonl"))
  heldout = [r for r in rows if "heldout_loss" in r]
  monitor = [r for r in rows if "knn_monitor" in r]
  rows = [r for r in rows if "loss" in r]
  if not rows:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  skip = {"step", "lr", "patches_per_s", "grad_norm", "input_wait_share"}
  keys = ["loss"] + [k for k in rows[-1] if k not in skip | {"loss"}]
  n = len(keys) + bool(monitor)
  fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8))
  steps = np.array([r["step"] for r in rows])
  if monitor:  # the online kNN accuracy (evaluation/monitor.py)
    ax = np.atleast_1d(axes)[-1]
    ax.plot([r["step"] for r in monitor], [r["knn_monitor"] for r in monitor],
            marker="o")
    ax.set_title("kNN accuracy (monitor)")
    ax.set_xlabel("step")
  for ax, k in zip(np.atleast_1d(axes), keys):
    ax.plot(steps, [r.get(k, np.nan) for r in rows], label="train")
    if heldout and f"heldout_{k}" in heldout[-1]:
      ax.plot([r["step"] for r in heldout],
              [r.get(f"heldout_{k}", np.nan) for r in heldout], label="held-out")
      ax.legend(fontsize=7)
    ax.set_title(k)
    ax.set_xlabel("step")
  fig.tight_layout()
  out = paths.join(workdir, "loss_curve.png")
  save_figure(fig, out)
  return out


def save_figure(fig, path):
  """Saves a matplotlib figure as PNG to a local or bucket path, and closes
  it."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  paths.write_bytes(path, buf.getvalue())
