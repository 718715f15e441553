"""The table harness: a runlocal Table 1 with two methods under mock data."""
import contextlib
import io
import json

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
  cell = data["rows"][0]["rrc"]["cells"]["16_crops"]
  assert 0 <= cell["linear"] <= 100 and cell["paper"] is None
  md = (tmp_path / "table1.md").read_text()
  assert "| vicreg |" in md and "baseline 256_crops" in md and "(?)" in md
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


def test_claims_read_the_measured_numbers():
  data = {"rows": [{"row": "m", "patch": {"cells": {
      "central": {"linear": 50.0}, "16_patches": {"linear": 88.0}}},
      "rrc": {"cells": {"central": {"linear": 89.0},
                        "16_crops": {"linear": 90.0}},
              "convergence": {"1": 0.5, "2": 0.6, "4": 0.7}}}]}
  got = {c["claim"].split(" (")[0]: c["holds"] for c in render.claims(data)}
  assert all(got.values()) and len(got) == 4
  data["rows"][0]["rrc"]["convergence"] = {"1": 0.5}  # one N: no trend
  assert len(render.claims(data)) == 3
  data["rows"][0]["patch"]["cells"]["16_patches"]["linear"] = 52.0
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
  assert data["rows"][0]["patch"]["cells"]["16_patches"]["linear"] == 50.0
  assert (tmp_path / "fashion_mnist.md").exists()
