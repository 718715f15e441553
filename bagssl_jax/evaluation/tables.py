"""results.json as text: the console table and WORKDIR/eval/results.md.

results.json holds one `{"linear", "knn", ...}` entry per protocol, plus
`convergence`, `health` and `meta` (what was evaluated, on which images).
`save` writes both; earlier ones are kept as results.<time>.json / .md.
"""
from __future__ import annotations

import json
import time

from bagssl_jax import paths
from bagssl_jax.evaluation import protocols as protocols_lib

_SPECIAL = ("convergence", "health", "meta")


def protocol_results(results):
  """The per-protocol entries of a results dict, in order."""
  return {k: v for k, v in results.items() if k not in _SPECIAL}


def metric_columns(results):
  """Accuracy columns in display order: linear, knn, knn_<k>, linear_<f>%."""
  cols = []
  for r in protocol_results(results).values():
    cols += [k for k in r if k not in cols]
  order = lambda k: (k != "linear", k != "knn", not k.startswith("knn"), k)
  return sorted(cols, key=order)


def _title(col, results):
  k = results.get("meta", {}).get("knn_k", 20)
  if col == "knn":
    return f"kNN k={k}"
  if col.startswith("knn_"):
    return f"kNN k={col[4:]}"
  if col.startswith("linear_"):
    return f"linear, {col[7:]} labels"
  return col


def format_table(results):
  """Console table: one row per protocol, one column per accuracy."""
  cols = metric_columns(results)
  lines = [f"{'protocol':<18}" + "".join(f"{c:>12}" for c in cols)]
  for p, r in protocol_results(results).items():
    lines.append(f"{p:<18}" + "".join(
        f"{r[c]:>12.4f}" if c in r else f"{'':>12}" for c in cols))
  return "\n".join(lines)


def markdown(results):
  """Tables 1-3 style: accuracy (%) per evaluation protocol (rows: the
  representation of an image; columns: linear probe, kNN, low-shot linear),
  then convergence (Fig. 3a) and representation health."""
  meta = results.get("meta", {})
  cols = metric_columns(results)
  out = [f"# Evaluation of {meta.get('workdir', 'the run')} "
         f"(step {meta.get('step', '?')})", "",
         f"Data: {meta.get('data', '?')}; test accuracy in %.", "",
         "| protocol | inputs / image | train / test images | " +
         " | ".join(_title(c, results) for c in cols) + " |",
         "|---|---|---|" + "---|" * len(cols)]
  per_image = meta.get("inputs_per_image", {})
  images = meta.get("images", {})
  for p, r in protocol_results(results).items():
    kind = protocols_lib.parse(p).kind
    n = per_image.get(p, "")
    n = "whole image" if kind == "central" else n
    tr, te = images.get(p, ("", ""))
    out.append(f"| `{p}` | {n} | {tr} / {te} | " + " | ".join(
        f"{100 * r[c]:.1f}" if c in r else "" for c in cols) + " |")
  conv = results.get("convergence")
  if conv:
    out += ["", "Convergence: cosine between the whole-image h and the mean h "
            "of N patches (mean over test images)", "",
            "| N | " + " | ".join(conv) + " |",
            "|---|" + "---|" * len(conv),
            "| cosine | " + " | ".join(f"{v:.3f}" for v in conv.values()) +
            " |"]
  health = results.get("health")
  if health:
    out += ["", f"Representation health ({health.get('images')} test patches)",
            "", "| space | dim | mean std | min std | dead dims | "
            "effective rank |", "|---|---|---|---|---|---|"]
    for space in ("h", "z"):
      s = health[space]
      out.append(f"| {space} | {s['dim']} | {s['std_mean']:.4f} | "
                 f"{s['std_min']:.4f} | {s['dead_dims']} | "
                 f"{s['effective_rank']:.1f} |")
  return "\n".join(out) + "\n"


def save(out_dir, results, with_markdown=True):
  """Writes OUT_DIR/results.json (and results.md) atomically. Results already
  there (training's eval, an earlier binary run) are kept, renamed after the
  time they were written: results.<YYYYmmdd-HHMMSS>.json / .md."""
  paths.makedirs(out_dir)
  files = {"results.json": json.dumps(results, indent=2)}
  if with_markdown:
    files["results.md"] = markdown(results)
  old = paths.path(out_dir) / "results.json"
  if old.exists():
    try:
      mtime = old.stat().mtime  # seconds (epath's StatResult)
    except (OSError, AttributeError):
      mtime = None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(mtime))
    for name in ("results.json", "results.md"):
      path = paths.join(out_dir, name)
      if paths.exists(path):
        paths.move(path, paths.join(
            out_dir, name.replace("results.", f"results.{stamp}.")))
  for name, text in files.items():
    paths.write_text(paths.join(out_dir, name), text)
