"""DIR/NAME.json and DIR/NAME.md: measured linear-probe accuracy per run and
protocol, in the paper's layout (rows: methods or patch sizes; BagSSL's
patch columns, then the multi-scale baseline's crop columns), each with the
paper's number from paper.json beside it (`?`: not verified), and the
paper's qualitative claims checked on the measured numbers."""
from __future__ import annotations

import json
import pathlib

from bagssl_jax import paths


GROUP_TITLES = {"patch": "BagSSL (fixed-scale patches)",
                "rrc": "multi-scale baseline (RandomResizedCrop)"}
# Thresholds of the claims, in accuracy points (this repository's reading of
# "far below" and "close to").
FAR_BELOW, CLOSE = 5.0, 2.0


def paper_numbers(name):
  with open(pathlib.Path(__file__).with_name("paper.json")) as f:
    return json.load(f).get(name, {"source": "none", "cells": {}})


def _load_results(run_dir):
  try:
    return json.loads(paths.read_text(paths.join(run_dir, "eval",
                                                 "results.json")))
  except (OSError, ValueError):
    return None


def collect(table, workdir):
  """The table as a dict (what NAME.json holds)."""
  paper = paper_numbers(table.name)
  rows = {}
  for run in table.runs:
    res = _load_results(paths.join(workdir, run.name))
    row = rows.setdefault(run.row, {"row": run.row})
    cells = {}
    for proto in table.columns[run.group]:
      entry = (res or {}).get(proto) or {}
      cells[proto] = {
          "linear": _pct(entry.get("linear")), "knn": _pct(entry.get("knn")),
          "paper": paper["cells"].get(run.row, {}).get(run.group, {}).get(
              proto)}
    row[run.group] = {"run": run.name, "config": run.config_arg,
                      "finished": res is not None, "cells": cells,
                      "convergence": (res or {}).get("convergence")}
  out = {"table": table.name, "title": table.title,
         "paper_source": paper.get("source"),
         "has_paper": not paper.get("analog", False),
         "paper_notes": paper.get("notes", []), "note": table.note,
         "columns": {g: list(c) for g, c in table.columns.items()},
         "rows": list(rows.values())}
  out["claims"] = claims(out)
  return out


def _pct(x):
  return None if x is None else round(100 * float(x), 2)


def _fmt(x):
  return "—" if x is None else f"{x:.1f}"


def claims(data):
  """The paper's claims on the measured linear accuracies, per row."""
  out = []
  for row in data["rows"]:
    p = {k: v["linear"] for k, v in row.get("patch", {}).get("cells",
                                                              {}).items()}
    b = {k: v["linear"] for k, v in row.get("rrc", {}).get("cells",
                                                            {}).items()}
    conv, whose = row.get("rrc", {}).get("convergence"), "baseline"
    if not conv:
      conv, whose = row.get("patch", {}).get("convergence"), "patch-trained"
    checks = []
    if p.get("central") is not None and p.get("16_patches") is not None:
      checks.append(("patch-trained central far below its 16 patches "
                     f"(>= {FAR_BELOW:g} points)",
                     p["16_patches"] - p["central"] >= FAR_BELOW,
                     f"{_fmt(p['central'])} vs {_fmt(p['16_patches'])}"))
    many = [p[k] for k in ("16_patches", "256_patches", "48_patches")
            if p.get(k) is not None]
    if many and b.get("central") is not None:
      best = max(many)
      checks.append((f"16/256 patches close to the baseline's central "
                     f"(within {CLOSE:g} points or above)",
                     best >= b["central"] - CLOSE,
                     f"{_fmt(best)} vs {_fmt(b['central'])}"))
    if b.get("central") is not None and b.get("16_crops") is not None:
      checks.append(("the baseline's 16 crops above its central",
                     b["16_crops"] > b["central"],
                     f"{_fmt(b['16_crops'])} vs {_fmt(b['central'])}"))
    ns = [n for n in (conv or {}) if n != "all"]
    if len(ns) >= 2:  # one N shows no trend
      vals = [conv[n] for n in ns]
      checks.append((f"convergence cosine rising with N ({whose})",
                     all(a <= c for a, c in zip(vals, vals[1:])),
                     ", ".join(f"N={n}: {conv[n]:.3f}" for n in ns)))
    for text, holds, figures in checks:
      out.append({"row": row["row"], "claim": text, "holds": bool(holds),
                  "figures": figures})
  return out


def markdown(data, command=""):
  cols = [(g, c) for g in ("patch", "rrc") for c in data["columns"].get(g, ())]
  head = ["row"] + [f"{'BagSSL' if g == 'patch' else 'baseline'} {c}"
                    for g, c in cols]
  has_paper = data.get("has_paper", True)
  lines = [f"# {data['title']}", "",
           ("Linear-probe test accuracy (%), measured (paper). Paper: "
            f"{data['paper_source']}; `?` = not verified against the paper's "
            "text." if has_paper else "Linear-probe test accuracy (%), "
            f"measured ({data['paper_source']})."), ""]
  lines += ["| " + " | ".join(head) + " |",
            "|" + "---|" * len(head)]
  for row in data["rows"]:
    cells = []
    for g, c in cols:
      cell = row.get(g, {}).get("cells", {}).get(c, {})
      paper = cell.get("paper")
      cells.append(_fmt(cell.get("linear")) + (
          f" ({'?' if paper is None else f'{paper:.1f}'})" if has_paper
          else ""))
    lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
  lines.append("")
  for g, title in GROUP_TITLES.items():
    if g in data["columns"]:
      lines.append(f"- {'BagSSL' if g == 'patch' else 'baseline'}: {title}")
  if data["note"]:
    lines.append(f"- {data['note']}")
  lines += [f"- {n}" for n in data["paper_notes"]]
  unfinished = [r[g]["run"] for r in data["rows"] for g in ("patch", "rrc")
                if g in r and not r[g]["finished"]]
  if unfinished:
    lines.append(f"- not finished yet: {', '.join(unfinished)}")
  if data["claims"]:
    lines += ["", "## The paper's claims on these numbers", "",
              "| row | claim | holds | figures |", "|---|---|---|---|"]
    lines += [f"| {c['row']} | {c['claim']} | "
              f"{'yes' if c['holds'] else 'no'} | {c['figures']} |"
              for c in data["claims"]]
  if command:
    lines += ["", f"Command: `{command}`"]
  return "\n".join(lines) + "\n"


def write(table, workdir, command=""):
  """Writes WORKDIR/NAME.json and NAME.md; returns the data."""
  data = collect(table, workdir)
  paths.makedirs(workdir)
  paths.write_text(paths.join(workdir, f"{table.name}.json"),
                   json.dumps(data, indent=2))
  paths.write_text(paths.join(workdir, f"{table.name}.md"),
                   markdown(data, command))
  return data


