"""reproduce/paper.json against the paper's text: every cell of Tables 1-5
equals the number in its row and column of the table it cites, every
table's cells are all there, every stated figure is in its sentence, and the
paper's claims (render.claims, docs/paper_tables.md) hold on its numbers."""
import json
import pathlib
import re

import pytest

from bagssl_jax.reproduce import render, tables

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "paper" / "bagssl_paper.txt"
TABLES = ("table1", "table2", "table3", "table4", "table5")


@pytest.fixture(scope="module")
def text():
  if not PAPER.exists():
    pytest.skip(f"the paper's text is not beside the repository ({PAPER})")
  return PAPER.read_text()


def _paper():
  with open(ROOT / "bagssl_jax" / "reproduce" / "paper.json") as f:
    return json.load(f)


def _squash(s):
  return " ".join(s.split())


def text_table(text, caption):
  """(column headers, {row: [numbers]}) of the table whose caption starts
  with `caption`'s "Table N:" in the text: the tab-separated block after
  the caption, its header lines (the "Method" line and those starting with
  a tab) then one line per row up to a blank line."""
  lines = text.splitlines()
  tag = caption.split(":")[0] + ":"
  start = next(i for i, l in enumerate(lines) if l.startswith(tag))
  assert _squash(caption.replace(tag, "")) in _squash(
      re.sub(r"\*\*|<[^>]+>", "", lines[start])), caption
  i = next(j for j in range(start, len(lines))
           if lines[j].startswith("Method\t"))
  header = lines[i]
  while lines[i + 1].startswith("\t"):
    i += 1
    header = lines[i]
  heads = [re.sub(r"<[^>]+>", "", h).strip() for h in header.split("\t")[1:]]
  rows = {}
  for line in lines[i + 1:]:
    if not line.strip():
      break
    name, *values = line.split("\t")
    rows[name.strip().lower()] = [float(v) for v in values]
  return [h for h in heads if h], rows


@pytest.mark.parametrize("name", TABLES)
def test_every_cell_is_the_papers_number_in_its_row_and_column(text, name):
  entry = _paper()[name]
  heads, rows = text_table(text, entry["caption"])
  assert heads == [c[0] for c in entry["columns"]], name
  assert set(rows) == set(entry["cells"]), name  # every row, no other
  paper = render.paper_numbers(name)
  for row, values in rows.items():
    for (head, group, proto, *metric), v in zip(entry["columns"], values):
      got = render.paper_value(paper, row, group, proto, *metric)
      assert got == v, (name, row, head, got, v)
  n_cells = sum(len(v) if isinstance(v, dict) else 1
                for r in entry["cells"].values() for g in r.values()
                for v in g.values())
  assert n_cells == len(rows) * len(heads)  # nothing beyond the text's
  # The harness shows every cell the paper has.
  table = tables.get(name)
  shown = {(r.row, r.group, p) for r in table.runs
           for p in table.columns[r.group]}
  assert {(row, c[1], c[2]) for row in rows for c in entry["columns"]} <= shown


def test_stated_figures_are_in_their_sentences(text):
  paper = _paper()
  flat = _squash(text)
  statements = paper["fig3b"]["statements"]
  assert {s["value"] for s in statements} == {73.2, 67.9, 62, 5.3}
  for s in statements:
    assert _squash(s["quote"]) in flat, s["quote"]
    assert f"{s['value']}%" in s["quote"], s
    if s["row"] and s["protocol"]:  # bound to a cell: the same number
      assert render.paper_value(paper["fig3b"], s["row"], s["group"],
                                s["protocol"]) == s["value"]
  cells = [(r, g, p) for r, gs in paper["fig3b"]["cells"].items()
           for g, ps in gs.items() for p in ps]
  assert all(any((s["row"], s["group"], s["protocol"]) == c
                 for s in statements) for c in cells)
  # The text's gap is its two numbers' difference; Table 4's VICReg central
  # is the same checkpoint's 73.2.
  assert round(73.2 - 67.9, 1) == 5.3
  assert paper["table4"]["cells"]["vicreg"]["rrc"]["central"] == 73.2


@pytest.mark.parametrize("name", TABLES)
def test_the_papers_claims_hold_on_its_own_numbers(name):
  data = render.collect(tables.get(name))  # no workdir: paper numbers only
  got = data["paper_claims"]
  assert got and all(c["holds"] for c in got), [c for c in got
                                                if not c["holds"]]
  rows = len(data["rows"])
  assert len(got) == rows * {"table4": 2, "table5": 3}.get(name, 4)
