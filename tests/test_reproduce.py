"""The table harness: a runlocal Table 1 with two methods and a runlocal
Table 5 on random-weight checkpoints under mock data; missing checkpoints."""
import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from bagssl_jax.reproduce import __main__ as reproduce
from bagssl_jax.reproduce import render, tables

# A 1-step ResNet-10 per run, one eval pass per protocol family.
_FAST = ["--config.total_steps=1", "--config.model.depth=resnet10",
         "--config.eval.subset_protocols=()", "--config.eval.figures=False",
         "--config.eval.health_images=0", "--config.eval.probe_steps=20",
         "--config.eval.low_shot=()", "--config.eval.knn_extra_k=()",
         "--config.eval.probe_learning_rates=(0.1,)",
         "--config.eval.probe_weight_decays=(0.0,)"]


def _main(argv):
  out = io.StringIO()
  with contextlib.redirect_stdout(out), tfds.testing.mock_data(
      num_examples=32):
    rc = reproduce.main(argv)
  return rc, out.getvalue()


def test_table1_runlocal_renders_and_a_rerun_skips_finished_runs(tmp_path):
  argv = ["--table=table1", "--variant=runlocal", "--methods=vicreg,simclr",
          f"--workdir={tmp_path}"] + _FAST
  rc, out = _main(argv)
  assert rc == 0, out
  assert "run 1 of 4: vicreg_patch" in out and "ETA" in out
  for run in ("vicreg_patch", "vicreg_rrc", "simclr_patch", "simclr_rrc"):
    assert (tmp_path / run / "eval" / "results.json").exists()
  data = json.loads((tmp_path / "table1.json").read_text())
  assert [r["row"] for r in data["rows"]] == ["vicreg", "simclr"]
  cell = data["rows"][0]["rrc"]["cells"]["16_crops"]["linear"]
  assert 0 <= cell["measured"] <= 100 and cell["paper"] == 91.9
  assert cell["diff"] == round(cell["measured"] - 91.9, 2)
  md = (tmp_path / "table1.md").read_text()
  assert "| vicreg |" in md and "baseline 256_crops" in md
  assert f"{cell['measured']:.1f} (91.9, {cell['diff']:+.1f})" in md
  assert "| simclr | patch-trained central far below" in md
  rc, out = _main(argv)
  assert rc == 0 and "4 of 4 runs finished earlier" in out
  assert "run 1 of 4" not in out


def test_tables_and_bad_arguments():
  fm = tables.get("fashion_mnist")
  assert len(fm.runs) == 8
  assert fm.protocols(fm.runs[1])[:4] == ("central", "1_crop", "16_crops",
                                          "256_crops")
  assert tables.get("table3").columns["patch"][-1] == "48_patches"
  # The analog's settings: 2 epochs at 28 px, 256 on a stated subset.
  from bagssl_jax.evaluation import protocols  # pylint: disable=g-import-not-at-top
  from bagssl_jax.reproduce import runner  # pylint: disable=g-import-not-at-top
  patch, rrc = (runner.build(fm, r) for r in fm.runs[:2])
  assert (patch.num_epochs, patch.input_size, rrc.input_size) == (2, 28, 28)
  assert protocols.limits("256_patches", patch.eval) == (1000, 1000)
  assert protocols.limits("16_crops", rrc.eval) == (10000, 0)
  assert protocols.limits("central", rrc.eval) == (10000, 0)
  assert reproduce.main(["--table=nosuch", "--workdir=x"]) == 2
  assert reproduce.main(["--table=table1", "--workdir=x",
                         "--config.eval.nosuch=1"]) == 2
  assert reproduce.main(["--table=table5", "--methods=tcr",
                         "--workdir=x"]) == 2  # Table 5 has no TCR row
  assert reproduce.main(["--table=table4", "--workdir=x"]) == 2  # no files


def _cells(**linear):
  return {k: {"linear": {"measured": v, "paper": None},
              "knn": {"measured": None, "paper": None}}
          for k, v in linear.items()}


def test_claims_read_the_measured_numbers():
  data = {"rows": [{"row": "m", "patch": {"cells": _cells(
      central=50.0, **{"16_patches": 88.0})},
      "rrc": {"cells": _cells(central=89.0, **{"16_crops": 90.0}),
              "convergence": {"1": 0.5, "2": 0.6, "4": 0.7}}}]}
  got = {c["claim"].split(" (")[0]: c["holds"] for c in render.claims(data)}
  assert all(got.values()) and len(got) == 4
  assert render.claims(data, "paper") == []  # no paper numbers here
  data["rows"][0]["rrc"]["convergence"] = {"1": 0.5}  # one N: no trend
  assert len(render.claims(data)) == 3
  data["rows"][0]["patch"]["cells"]["16_patches"]["linear"]["measured"] = 52.
  got = {c["claim"].split(" (")[0]: c["holds"] for c in render.claims(data)}
  assert not got["patch-trained central far below its 16 patches"]


def test_a_killed_harness_runs_only_what_is_left(tmp_path):
  from bagssl_jax.reproduce import runner  # pylint: disable=g-import-not-at-top
  table = tables.get("fashion_mnist", ["vicreg"])
  configs = [(r, runner.build(table, r, "runlocal")) for r in table.runs]
  calls = []

  def fake_train(config, run_dir, fail=False):
    calls.append(run_dir)
    if fail:
      raise KeyboardInterrupt  # killed during the first run's training
    (tmp_path / run_dir).joinpath("eval").mkdir(parents=True)
    (tmp_path / run_dir / "eval" / "results.json").write_text(json.dumps(
        {p: {"linear": 0.5, "knn": 0.4} for p in config.eval.protocols}))

  lines = []
  try:
    runner.run_all(table, configs, str(tmp_path),
                   lambda c, d: fake_train(c, d, fail=True), lines.append)
  except KeyboardInterrupt:
    pass
  runner.run_all(table, configs, str(tmp_path), fake_train, lines.append)
  assert len(calls) == 3 and "run 2 of 2: vicreg_rrc" in lines[-2]
  ran, skipped = runner.run_all(table, configs, str(tmp_path), fake_train,
                                lines.append)
  assert (ran, skipped) == ([], ["vicreg_patch", "vicreg_rrc"])
  data = render.write(table, str(tmp_path))
  cell = data["rows"][0]["patch"]["cells"]["16_patches"]["linear"]
  assert cell == {"measured": 50.0, "paper": None, "diff": None}
  md = (tmp_path / "fashion_mnist.md").read_text()
  row = next(l for l in md.splitlines() if l.startswith("| vicreg |"))
  assert row.startswith("| vicreg | 50.0 | 50.0 |") and "(" not in row


def test_table5_runlocal_evaluates_random_weight_checkpoints(tmp_path):
  argv = ["--table=table5", "--variant=runlocal", f"--workdir={tmp_path}",
          "--config.eval.probe_steps=20", "--config.eval.figures=False",
          "--config.eval.health_images=0",
          "--config.eval.probe_learning_rates=(0.1,)",
          "--config.eval.probe_weight_decays=(0.0,)"]
  rc, out = _main(argv)
  assert rc == 0, out
  assert "run 3 of 3: byol" in out
  files = sorted(os.listdir(tmp_path / "random_checkpoints"))
  assert files == [f"{m}_cifar10.safetensors"
                   for m in ("byol", "simclr", "vicreg")]
  data = json.loads((tmp_path / "table5.json").read_text())
  assert [r["row"] for r in data["rows"]] == ["simclr", "vicreg", "byol"]
  simclr = data["rows"][0]["rrc"]
  assert simclr["checkpoint"]["file"] == "simclr_cifar10.ckpt"
  knn = simclr["cells"]["local_aggregation"]["knn"]
  assert 0 <= knn["measured"] <= 100 and knn["paper"] == 93.1
  assert knn["diff"] == round(knn["measured"] - 93.1, 2)
  md = (tmp_path / "table5.md").read_text()
  assert "baseline local_aggregation knn" in md and "(93.1, " in md
  assert "| byol | local aggregation above central (kNN) |" in md
  # Table 4 the same way: ResNet-50s on 64-px mock images.
  rc, out = _main(["--table=table4", "--methods=vicreg", "--variant=runlocal",
                   f"--workdir={tmp_path}/t4"] + argv[3:])
  assert rc == 0, out
  cell = json.loads((tmp_path / "t4" / "table4.json").read_text())[
      "rows"][0]["rrc"]["cells"]["48_crops"]["linear"]
  assert 0 <= cell["measured"] <= 100 and cell["paper"] == 74.4


def test_missing_checkpoints_are_one_line_before_anything_compiles(tmp_path):
  from tests.conftest import ROOT  # pylint: disable=g-import-not-at-top
  (tmp_path / "ckpts").mkdir()
  (tmp_path / "ckpts" / "vicreg_cifar10.npz").write_bytes(b"")  # a copy
  r = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.reproduce", "--table=table5",
       f"--checkpoints={tmp_path}/ckpts", f"--workdir={tmp_path}/out"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_LOG_COMPILES="1"))
  assert r.returncode == 2, r.stderr
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      "error: table5: 2 checkpoint files missing in "), r.stderr
  assert "simclr_cifar10.ckpt (simclr: https://github.com/vturrisi/" in (
      lines[0]) and "byol_cifar10.ckpt" in lines[0]
  assert "vicreg_cifar10" not in lines[0]
  assert not (tmp_path / "out").exists()
  # Table 4: TCR has no public file, so its absence is no error.
  from bagssl_jax.reproduce import external  # pylint: disable=g-import-not-at-top
  t4 = tables.get("table4")
  external.write_random(tables.get("table4", ["vicreg"]), tmp_path / "t4")
  with pytest.raises(external.MissingCheckpoints) as e:
    external.locate(t4, tmp_path / "t4")
  assert "2 checkpoint files" in str(e.value) and "tcr" not in str(e.value)
  assert "resnet50-1x.pth (simclr: " in str(e.value)
  found = external.locate(tables.get("table4", ["vicreg", "tcr"]),
                          tmp_path / "t4")
  assert list(found) == ["vicreg"]
  assert external.skipped(tables.get("table4", ["vicreg", "tcr"]),
                          found) == ["tcr"]
