"""DIR/NAME.json and DIR/NAME.md: measured accuracy per run, protocol and
metric (linear probe; kNN where the table shows it), in the paper's layout
(rows: methods or patch sizes; BagSSL's patch columns, then the multi-scale
baseline's crop columns), each cell with the paper's number from paper.json
and the difference measured - paper, and the paper's qualitative claims
checked on the measured numbers and on the paper's own."""
from __future__ import annotations

import json
import pathlib

from bagssl_jax import paths


SHORT = {"patch": "BagSSL", "rrc": "baseline"}
# Thresholds of the claims, in accuracy points (this repository's reading of
# "far below" and "close to").
FAR_BELOW, CLOSE = 5.0, 2.0


def paper_numbers(name):
  with open(pathlib.Path(__file__).with_name("paper.json")) as f:
    return json.load(f).get(name, {"source": "none", "cells": {}})


def paper_value(paper, row, group, protocol, metric="linear"):
  """The paper's number of a cell, or None: cells hold a number (linear
  probe) or {metric: number}."""
  v = paper["cells"].get(row, {}).get(group, {}).get(protocol)
  if isinstance(v, dict):
    return v.get(metric)
  return v if metric == "linear" else None


def _load_results(run_dir):
  try:
    return json.loads(paths.read_text(paths.join(run_dir, "eval",
                                                 "results.json")))
  except (OSError, ValueError):
    return None


def collect(table, workdir=None):
  """The table as a dict (what NAME.json holds); workdir None: no results
  (the paper's numbers alone)."""
  paper = paper_numbers(table.name)
  has_paper = not paper.get("analog", False)
  rows = {}
  for run in table.runs:
    res = _load_results(paths.join(workdir, run.name)) if workdir else None
    row = rows.setdefault(run.row, {"row": run.row})
    cells = {}
    for proto in table.columns[run.group]:
      entry = (res or {}).get(proto) or {}
      cells[proto] = {}
      for metric in ("linear", "knn"):
        got = _pct(entry.get(metric))
        want = paper_value(paper, run.row, run.group, proto, metric)
        cells[proto][metric] = {
            "measured": got, "paper": want,
            "diff": None if None in (got, want) else round(got - want, 2)}
    row[run.group] = {"run": run.name, "config": run.config_arg,
                      "finished": res is not None, "cells": cells,
                      "convergence": (res or {}).get("convergence")}
    if run.checkpoint:
      c = run.checkpoint
      row[run.group]["checkpoint"] = {
          "layout": c.layout, "arch": c.arch, "file": c.file,
          "published": c.published or "no public file known"}
  notes = list(paper.get("notes", []))
  notes += [f"paper ({s['where']}): {s['value']}%, \"{s['quote']}\"" +
            (f" ({s['note']})" if s.get("note") else "")
            for s in paper.get("statements", ())]
  out = {"table": table.name, "title": table.title,
         "paper_source": paper.get("source"), "has_paper": has_paper,
         "paper_notes": notes, "note": table.note,
         "metrics": list(table.metrics), "titles": dict(table.titles),
         "columns": {g: list(c) for g, c in table.columns.items()},
         "rows": list(rows.values())}
  out["claims"] = claims(out)
  out["paper_claims"] = claims(out, "paper") if has_paper else []
  return out


def _pct(x):
  return None if x is None else round(100 * float(x), 2)


def _fmt(x):
  return "—" if x is None else f"{x:.1f}"


def claims(data, which="measured"):
  """The paper's claims, per row, on the `which` numbers ("measured" or
  "paper") of the linear probe (and kNN where a table has it)."""
  out = []
  for row in data["rows"]:
    def get(group, metric="linear", row=row):
      return {k: v[metric][which] for k, v in row.get(group, {}).get(
          "cells", {}).items()}
    p, b, bk = get("patch"), get("rrc"), get("rrc", "knn")
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
    crops = [(k, b[k]) for k in ("1_crop", "16_crops", "48_crops",
                                 "256_crops") if b.get(k) is not None]
    if len(crops) >= 2:
      checks.append(("accuracy rising with the number of crops",
                     all(x <= y for (_, x), (_, y) in zip(crops, crops[1:])),
                     ", ".join(f"{k}: {_fmt(v)}" for k, v in crops)))
    if None not in (b.get("central"), b.get("local_aggregation")):
      checks.append(("local aggregation above central (linear)",
                     b["local_aggregation"] > b["central"],
                     f"{_fmt(b['local_aggregation'])} vs {_fmt(b['central'])}"))
    if None not in (bk.get("central"), bk.get("local_aggregation")):
      checks.append(("local aggregation above central (kNN)",
                     bk["local_aggregation"] > bk["central"],
                     f"{_fmt(bk['local_aggregation'])} vs "
                     f"{_fmt(bk['central'])}"))
    if None not in (bk.get("local_aggregation"), b.get("central")):
      checks.append(("local aggregation's kNN above central's linear probe",
                     bk["local_aggregation"] > b["central"],
                     f"{_fmt(bk['local_aggregation'])} vs "
                     f"{_fmt(b['central'])}"))
    conv, whose = row.get("rrc", {}).get("convergence"), "baseline"
    if not conv:
      conv, whose = row.get("patch", {}).get("convergence"), "patch-trained"
    ns = [n for n in (conv or {}) if n != "all"]
    if which == "measured" and len(ns) >= 2:  # one N shows no trend
      vals = [conv[n] for n in ns]
      checks.append((f"convergence cosine rising with N ({whose})",
                     all(a <= c for a, c in zip(vals, vals[1:])),
                     ", ".join(f"N={n}: {conv[n]:.3f}" for n in ns)))
    for text, holds, figures in checks:
      out.append({"row": row["row"], "claim": text, "holds": bool(holds),
                  "figures": figures})
  return out


def _cell(cell, has_paper):
  if not has_paper:
    return _fmt(cell["measured"])
  if cell["paper"] is None:
    return f"{_fmt(cell['measured'])} (?)"
  diff = "" if cell["diff"] is None else f", {cell['diff']:+.1f}"
  return f"{_fmt(cell['measured'])} ({cell['paper']:.1f}{diff})"


def markdown(data, command=""):
  metrics = data.get("metrics", ["linear"])
  cols = [(g, c, m) for g in ("patch", "rrc") for c in data["columns"].get(
      g, ()) for m in metrics]
  head = ["row"] + [f"{SHORT[g]} {c}" + (f" {m}" if len(metrics) > 1
                                          else "") for g, c, m in cols]
  has_paper = data.get("has_paper", True)
  what = " / ".join({"linear": "linear probe", "knn": "kNN"}[m]
                    for m in metrics)
  lines = [f"# {data['title']}", "",
           (f"Top-1 test accuracy (%), {what}: measured (paper, measured - "
            f"paper). Paper: {data['paper_source']}; `?` = no paper number."
            if has_paper else f"Top-1 test accuracy (%), {what}, measured "
            f"({data['paper_source']})."), ""]
  lines += ["| " + " | ".join(head) + " |",
            "|" + "---|" * len(head)]
  for row in data["rows"]:
    cells = [_cell(row[g]["cells"][c][m], has_paper) if g in row else "—"
             for g, c, m in cols]
    lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
  lines.append("")
  for g, title in data.get("titles", {}).items():
    if g in data["columns"]:
      lines.append(f"- {SHORT[g]}: {title}")
  if data["note"]:
    lines.append(f"- {data['note']}")
  lines += [f"- {n}" for n in data["paper_notes"]]
  for r in data["rows"]:
    for g in ("patch", "rrc"):
      if g in r and "checkpoint" in r[g]:
        c = r[g]["checkpoint"]
        lines.append(f"- {r['row']}: {c['layout']} {c['arch']} "
                     f"`{c['file']}`: {c['published']}")
  unfinished = [r[g]["run"] for r in data["rows"] for g in ("patch", "rrc")
                if g in r and not r[g]["finished"]]
  if unfinished:
    lines.append(f"- not finished yet: {', '.join(unfinished)}")
  paper = {(c["row"], c["claim"]): c for c in data.get("paper_claims", ())}
  keys = list(dict.fromkeys([(c["row"], c["claim"]) for c in data["claims"]]
                            + list(paper)))
  if keys:
    mine = {(c["row"], c["claim"]): c for c in data["claims"]}
    yes = lambda c: "—" if c is None else "yes" if c["holds"] else "no"  # pylint: disable=g-long-lambda
    fig = lambda c: "" if c is None else c["figures"]
    lines += ["", "## The paper's claims on these numbers", "",
              "| row | claim | holds | figures | on the paper's numbers |",
              "|---|---|---|---|---|"]
    for k in keys:
      m, p = mine.get(k), paper.get(k)
      lines.append(f"| {k[0]} | {k[1]} | {yes(m)} | {fig(m)} | "
                   + (f"{yes(p)}: {fig(p)}" if p else "—") + " |")
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
