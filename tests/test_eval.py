"""The eval suite: protocols, streamed aggregation, the eval binary on an RGB
image-folder run (agreement with training's eval, all protocols, figures),
transfer, the notebook API and notebook, the optax probe vs scikit-learn."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from bagssl_jax import checkpoints, config as config_lib, models, sharding
from bagssl_jax import train
from bagssl_jax.data import augment
from bagssl_jax.evaluation import binary, embedding, figures, probes
from bagssl_jax.evaluation import protocols, tables
from bagssl_jax.evaluation import run as eval_lib
from bagssl_jax.data.sources import ArraySource
from bagssl_jax.data import patches as patches_lib
from tests.conftest import ROOT, load_config


# ------------------------------------------------------------ protocols ---
def _kind_k(name):
  p = protocols.parse(name)
  return p.kind, 1 if p.kind == "central" else p.k


def test_parse_and_passes():
  assert _kind_k("256_patches") == ("random", 256)
  assert _kind_k("1_patch") == ("random", 1)
  assert _kind_k("16_crops") == ("crops", 16)
  assert _kind_k("local_aggregation") == ("local", 0)
  for bad in ("0_patches", "patches", "16_crop_s", "all"):
    with pytest.raises(ValueError, match="unknown protocol"):
      protocols.parse(bad)
  ev = config_lib.base_config().eval
  ev.update(max_train_images=0, max_test_images=0,
            subset_max_train_images=100, subset_max_test_images=50)
  plan = protocols.plan_passes(protocols.FULL, ev)
  assert plan == [
      ("patches", (0, 0), ["central", "1_patch", "16_patches", "all_patches"]),
      ("patches", (100, 50), ["256_patches"]),
      ("crops", (100, 50), ["1_crop", "16_crops"]),
      ("local", (100, 50), ["local_aggregation"])]
  ev.max_test_images = 20  # a global limit below the subset's wins
  assert protocols.limits("256_patches", ev) == (100, 20)
  # A protocol's own limits come before the subset's.
  ev.update(max_test_images=0,
            protocol_limits=(("256_patches", 30, 10), ("16_patches", 70, 0)))
  assert protocols.limits("256_patches", ev) == (30, 10)
  assert protocols.limits("16_patches", ev) == (70, 0)
  assert protocols.limits("1_crop", ev) == (100, 50)
  assert protocols.plan_passes(["central", "16_patches", "256_patches"],
                               ev) == [("patches", (0, 0), ["central"]),
                                       ("patches", (70, 0), ["16_patches"]),
                                       ("patches", (30, 10), ["256_patches"])]


def test_local_cells_average_each_quadrant():
  pos = patches_lib.grid_positions((28, 28), 14, 2)  # 8 x 8 positions
  m = protocols.local_cells(pos, 14, (28, 28), 2)
  assert m.shape == (64, 4)
  np.testing.assert_allclose(m.sum(0), 1.0, rtol=1e-6)  # a mean per cell
  assert ((m > 0).sum(1) == 1).all()  # each patch in exactly one cell
  top_left = (pos[:, 0] + 7 < 14) & (pos[:, 1] + 7 < 14)
  assert (m[top_left, 0] > 0).all() and (m[~top_left, 0] == 0).all()


def test_bad_eval_config_is_a_config_error(runlocal_config):
  for field, value, match in (("protocols", ("3_crop_s",), "unknown protocol"),
                              ("low_shot", (1.5,), "low_shot"),
                              ("local_grid", 0, "local_grid")):
    config = load_config("fashion_mnist_vicreg", "runlocal")
    config.eval[field] = value
    with pytest.raises(config_lib.ConfigError, match=match):
      eval_lib.prepare(config)


# ---------------------------------------------- streamed aggregation ------
def test_pass_features_equal_explicit_means(runlocal_config):
  """Every protocol's streamed feature is the mean of the h of its own
  patches / crops / cells, computed here one patch at a time."""
  config = runlocal_config
  config.eval.batch_patches = 16  # several batches for 12 images
  model = models.make_model(config)
  variables = model.init(jax.random.PRNGKey(0),
                         np.zeros((1, 14, 14, 1), np.float32), train=False)
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1})
  variables = sharding.replicate(variables, mesh)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 28, 28, 1), np.uint8)
  src = ArraySource(images, np.arange(12, dtype=np.int32) % 3, 3)
  pm = embedding.PatchModel(model, config, mesh, chunk=64)
  idx = np.arange(12)
  for names in (["central", "1_patch", "4_patches", "all_patches"],
                ["2_crops"], ["local_aggregation"]):
    emb = embedding.PassEmbedder(model, config, (28, 28, 1), mesh, names)
    assert emb.batch_size < 12  # streamed over several batches
    feats, labels = emb(variables, src)
    np.testing.assert_array_equal(labels, src.labels)
    for name in names:
      kind, k = _kind_k(name)
      if kind == "random":
        pos = patches_lib.random_positions(config.eval.seed, idx, k, (28, 28), 14)
      elif kind in ("grid", "local"):
        stride = (config.eval.all_patches_stride if kind == "grid"
                  else config.eval.local_stride)
        g = patches_lib.grid_positions((28, 28), 14, stride)
        pos = np.broadcast_to(g, (12,) + g.shape)
      if kind == "central":
        continue  # the whole image: no patches to average
      if kind == "crops":
        boxes = patches_lib.random_resized_crops(config.eval.seed, idx, k,
                                                 (28, 28))
        crops = np.asarray(jax.jit(
            lambda im, b: augment.crop_and_resize(im, b, config.input_size))(
                images.astype(np.float32) / 255., boxes))
        expect = _crop_means(model, variables, config, crops)
      else:
        flat = patches_lib.extract_patches(images, pos, 14)
        h, _ = pm(variables, flat.reshape((-1, 14, 14, 1)))
        h = h.reshape(12, pos.shape[1], -1)
        if kind == "local":
          cells = protocols.local_cells(pos[0], 14, (28, 28),
                                        config.eval.local_grid)
          expect = np.einsum("lg,bld->bgd", cells, h).reshape(12, -1)
        else:
          expect = h.mean(1)
      np.testing.assert_allclose(feats[name], expect, rtol=2e-4, atol=2e-5,
                                 err_msg=name)
    if "central" in names:
      assert sorted(emb.convergence_ns) == ["1", "2", "4", "all"]
      assert np.all(np.abs(feats["cos_all"]) <= 1 + 1e-6)


def _crop_means(model, variables, config, crops):
  x = augment.normalize(crops.reshape((-1,) + crops.shape[2:]),
                        config.data.mean, config.data.std)
  h = model.apply(jax.device_get(variables), x, method=model.embed)
  return np.asarray(h).reshape(crops.shape[0], crops.shape[1], -1).mean(1)


# ------------------------------------- a run on an RGB image folder -------
def _image_folder(root, sizes, seed):
  """2 classes (reddish / bluish) of RGB PNG and JPEG images of `sizes`."""
  rng = np.random.default_rng(seed)
  for split, n in (("train", 24), ("test", 12)):
    for i in range(n):
      cls = i % 2
      h, w = sizes[i % len(sizes)]
      im = rng.integers(0, 120, (h, w, 3), np.uint8)
      im[..., 0 if cls == 0 else 2] += 120
      d = root / split / f"class{cls}"
      d.mkdir(parents=True, exist_ok=True)
      ext = "png" if i % 3 else "jpg"
      Image.fromarray(im).save(d / f"{i}.{ext}")
  return root


def _folder_config(root):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.update(name="image_folder", path=str(root), channels=3,
                     image_size=32, mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25))
  config.patch_size = 12
  config.eval.all_patches_stride = 10
  config.eval.local_stride = 5
  config.eval.heldout_every_steps = 2
  config.eval.heldout_images = 100  # more than the 12 test images: 12 used
  config.eval.figure_images = 6
  return config


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
  """An RGB image-folder run (32x32 after resize, 12-px patches) trained
  with its end-of-training eval, then evaluated again by the eval binary."""
  tmp = tmp_path_factory.mktemp("folder")
  root = _image_folder(tmp / "data", [(36, 40), (32, 32), (48, 30)], 0)
  workdir = tmp / "run"
  train.train_and_evaluate(_folder_config(root), str(workdir))
  train_eval = json.loads((workdir / "eval" / "results.json").read_text())
  # The same 4 devices as this process: the same eval batches, bit for bit.
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") +
             " --xla_force_host_platform_device_count=4")
  proc = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.eval", f"--workdir={workdir}",
       "--config.eval.tsne_images=20"], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, train_eval, proc


def test_binary_writes_every_protocol_and_figure(folder_run):
  workdir, _, proc = folder_run
  results = json.loads((workdir / "eval" / "results.json").read_text())
  assert list(tables.protocol_results(results)) == list(protocols.FULL)
  for name, r in tables.protocol_results(results).items():
    assert {"linear", "knn", "knn_200", "linear_1%", "linear_10%"} <= set(r)
    assert all(0 <= v <= 1 for v in r.values()), name
  assert list(results["convergence"]) == ["1", "2", "4", "8", "16", "all"]
  assert all(-1 <= v <= 1 for v in results["convergence"].values())
  for space in ("h", "z"):
    s = results["health"][space]
    assert 0 < s["effective_rank"] <= s["dim"] and s["std_max"] > 0
  assert results["meta"]["images"]["256_patches"] == [24, 12]  # subset 32/16
  for path in figures.paths(str(workdir)).values():
    assert os.path.getsize(path) > 1000, path
  md = (workdir / "eval" / "results.md").read_text()
  assert "| `local_aggregation` |" in md and "kNN k=200" in md
  assert "16_crops" in proc.stdout  # the console table


def test_binary_agrees_with_training_eval(folder_run):
  workdir, train_eval, _ = folder_run
  binary = json.loads((workdir / "eval" / "results.json").read_text())
  shared = list(tables.protocol_results(train_eval))
  assert shared == ["central", "1_patch", "16_patches", "all_patches"]
  for name in shared:
    for metric in ("linear", "knn"):
      assert binary[name][metric] == train_eval[name][metric], (name, metric)
  assert binary["convergence"] == train_eval["convergence"]
  # The binary's results did not replace training's: those are kept.
  kept = sorted((workdir / "eval").glob("results.*.json"))
  assert len(kept) == 1 and json.loads(kept[0].read_text()) == train_eval
  assert kept[0].with_suffix(".md").exists()


def test_heldout_loss_logged(folder_run):
  workdir, _, _ = folder_run
  rows = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  held = [r for r in rows if "heldout_loss" in r]
  assert [r["step"] for r in held] == [2, 3]
  assert {"heldout_invariance", "heldout_variance"} <= set(held[0])
  assert all(np.isfinite(r["heldout_loss"]) for r in held)


def test_notebook_api_embeds_new_images(folder_run):
  workdir, _, _ = folder_run
  m = checkpoints.load(str(workdir))
  rng = np.random.default_rng(1)
  new = rng.integers(0, 256, (5, 50, 44, 3), np.uint8)  # another size: resized
  a = m.embed_images(new, protocol="16_patches")
  assert a.shape == (5, 8 * m.config.model.width) and np.isfinite(a).all()
  np.testing.assert_array_equal(a, m.embed_images(new, "16_patches"))
  gray = m.embed_images(new[..., :1], protocol="central")  # converted to RGB
  assert gray.shape == a.shape
  with pytest.raises(ValueError, match="unknown protocol"):
    m.embed_images(new, protocol="17_pieces")


def test_notebook_runs(folder_run, tmp_path, monkeypatch):
  workdir, _, _ = folder_run
  with open(os.path.join(ROOT, "notebooks", "explore.ipynb")) as f:
    cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
  monkeypatch.setenv("BAGSSL_WORKDIR", str(workdir))
  monkeypatch.chdir(tmp_path)
  scope = {}
  for cell in cells:
    src = "".join(cell["source"])
    if "IPython" in src:
      pytest.importorskip("IPython")
    exec(compile(src, "explore.ipynb", "exec"), scope)  # pylint: disable=exec-used
  assert (tmp_path / "similarity_heatmap.png").stat().st_size > 1000
  assert scope["heat"]["h"].shape == (21, 21)  # 32 - 12 + 1 positions a side
  assert scope["bag"].shape[0] == 8


def test_transfer_to_another_dataset(folder_run, tmp_path):
  """The RGB run evaluated on a grayscale folder of 28x28 images."""
  workdir, _, _ = folder_run
  other = tmp_path / "other"
  _image_folder(other, [(28, 28)], 3)
  for p in other.rglob("*.png"):
    Image.open(p).convert("L").save(p)
  run_config = checkpoints.read_config(str(workdir))
  config = binary.binary_config(run_config, {
      "eval.data.name": "image_folder", "eval.data.path": str(other),
      "eval.protocols": ("16_patches",), "eval.low_shot": (),
      "eval.figures": False, "eval.tsne_images": 0, "eval.health_images": 0})
  m = checkpoints.load(str(workdir))
  mesh = sharding.make_mesh(config.mesh)
  results = eval_lib.evaluate(
      m.model, jax.device_put(m.variables, sharding.replicated(mesh)), config,
      mesh)
  assert results["meta"]["data"] == "image_folder"
  assert results["meta"]["images"]["16_patches"] == (24, 12)
  config.eval.data.path = str(tmp_path / "missing")
  with pytest.raises(eval_lib.sources.DataError, match=str(tmp_path / "missing")):
    eval_lib.prepare(config)


def test_binary_bad_override_one_line_error(folder_run):
  workdir, _, _ = folder_run
  env = dict(os.environ, JAX_LOG_COMPILES="1")
  proc = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.eval", f"--workdir={workdir}",
       "--config.eval.protocols=('central','3_slices')"], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "Compiling" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "3_slices" in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize("override", ["--config.eval.nosuch=1",
                                      "--config.eval.knn_k=many"])
def test_binary_unknown_field_one_line_error(tmp_path, override):
  """Unknown fields and wrong types fail while the flag is defined (before
  any parsing): still one `error:` line, exit 2."""
  proc = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.eval", f"--workdir={tmp_path}",
       override], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and override in errors[0], proc.stderr[-2000:]


# --------------------------------------------- optax probe vs sklearn -----
def test_optax_probe_matches_sklearn_logistic_regression():
  """Within 0.5 points of scikit-learn's LogisticRegression on the same
  (overlapping, 10-class) features."""
  sklearn = pytest.importorskip("sklearn")
  del sklearn
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(10, 48)) * 0.3
  ytr, yte = rng.integers(0, 10, 6000), rng.integers(0, 10, 6000)
  xtr = (centers[ytr] + rng.normal(size=(6000, 48))).astype(np.float32)
  xte = (centers[yte] + rng.normal(size=(6000, 48))).astype(np.float32)
  ev = config_lib.base_config().eval
  ours = probes.linear_probe(
      xtr, ytr, xte, yte, 10, learning_rates=tuple(ev.probe_learning_rates),
      weight_decays=tuple(ev.probe_weight_decays), steps=ev.probe_steps,
      batch_size=ev.probe_batch_size, seed=0)["accuracy"]
  scaler = StandardScaler().fit(xtr)
  clf = LogisticRegression(max_iter=2000).fit(scaler.transform(xtr), ytr)
  ref = float(np.mean(clf.predict(scaler.transform(xte)) == yte))
  assert 0.4 < ref < 0.9  # a regime where the probe matters
  assert abs(ours - ref) <= 0.005, (ours, ref)


def test_save_keeps_earlier_results(tmp_path):
  first = {"central": {"linear": 0.5, "knn": 0.4}}
  second = {"central": {"linear": 0.6, "knn": 0.5}}
  tables.save(str(tmp_path), first)
  os.utime(tmp_path / "results.json", (0, 0))  # written long ago
  tables.save(str(tmp_path), second)
  assert json.loads((tmp_path / "results.json").read_text()) == second
  kept = sorted(tmp_path.glob("results.*.json"))
  assert len(kept) == 1 and json.loads(kept[0].read_text()) == first
  assert "19700101" in kept[0].name or "19691231" in kept[0].name
  assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".md") == [
      kept[0].with_suffix(".md").name, "results.md"]
