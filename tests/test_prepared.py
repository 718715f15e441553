"""Prepared datasets (prepare -> ArrayRecord -> pipeline), unlabelled and
same-size image folders, and prepare -> train -> eval binary end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bagssl_jax import train
from bagssl_jax.data import pipeline, prepared, sources
from bagssl_jax.evaluation import run as eval_run
from conftest import ROOT, load_config


def _smooth(rng, h, w):
  """A smooth RGB image (gradients + a blob): JPEG's error stays small."""
  y, x = np.mgrid[:h, :w] / max(h, w)
  a, b, c = rng.uniform(0, 1, 3)
  im = np.stack([a * x + (1 - a) * y, b * y, c * (1 - x)], -1)
  return (np.clip(im, 0, 1) * 255).astype(np.uint8)


def _folder(root, sizes, n_train=20, n_test=8, labelled=True, seed=0):
  rng = np.random.default_rng(seed)
  for split, n in (("train", n_train), ("test", n_test)):
    for i in range(n):
      d = root / split / (f"c{i % 2}" if labelled else "")
      d.mkdir(parents=True, exist_ok=True)
      h, w = sizes[i % len(sizes)]
      Image.fromarray(_smooth(rng, h, w)).save(d / f"{i}.png")
  return root


def _config(path, name="image_folder", image_size=16):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.update(name=name, path=str(path), channels=3,
                     image_size=image_size, mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25))
  config.patch_size, config.batch_size = 8, 8
  return config


def _batches(config, source, n=3):
  it = pipeline.make_train_iterator(config, source)
  return [next(it) for _ in range(n)]


@pytest.mark.parametrize("fmt,max_err", [("raw", 0), ("png", 0),
                                         ("jpeg", 12)])
def test_prepared_patches_match_on_the_fly(tmp_path, fmt, max_err):
  root = _folder(tmp_path / "data", [(20, 26), (30, 18), (16, 16)])
  config = _config(root)
  meta = prepared.prepare(config.data, tmp_path / fmt, ["train", "test"], fmt,
                          images_per_shard=7, log=lambda m: None)
  assert meta["splits"]["train"] == {"count": 20, "num_shards": 3,
                                     "labelled": True}
  live = _batches(config, sources.load_source(config.data, "train"))
  config.data.update(name="prepared", path=str(tmp_path / fmt))
  src = sources.load_source(config.data, "train")
  assert src.num_classes == 2 and src.image_shape == (16, 16, 3)
  for a, b in zip(live, _batches(config, src)):
    np.testing.assert_array_equal(a["label"], b["label"])
    err = np.abs(a["patches"].astype(int) - b["patches"].astype(int))
    assert err.max() <= max_err and err.mean() <= max(max_err / 4, 0), fmt


def test_prepare_resumes_and_splits_over_hosts(tmp_path):
  root = _folder(tmp_path / "data", [(16, 16)])
  config = _config(root)
  out = tmp_path / "out"
  logs = []
  for host in (0, 1):  # two hosts, one shard each out of train's 3 + test's 2
    prepared.prepare(config.data, out, ["train", "test"], "raw",
                     shard_index=host, num_shards=2, images_per_shard=7,
                     log=logs.append)
    if host == 0:
      with pytest.raises(sources.DataError, match="incomplete"):
        prepared.PreparedSource(out, "train")
  assert "3 shards" in logs[0] and "2 shards" in logs[1]
  first = (out / "train-00000-of-00003.array_record").stat().st_mtime_ns
  (out / "train-00002-of-00003.done").unlink()  # killed while writing it
  (out / ".train-00002-of-00003.tmp123").write_bytes(b"partial")
  prepared.prepare(config.data, out, ["train", "test"], "raw",
                   images_per_shard=7, log=logs.append)
  assert "1 shards (7 images)" in logs[-1]
  assert (out / "train-00000-of-00003.array_record").stat().st_mtime_ns == first
  assert len(prepared.PreparedSource(out, "train")) == 20
  assert not list(out.glob(".*tmp*"))


def test_unlabelled_flat_folder_trains_but_does_not_evaluate(tmp_path):
  root = tmp_path / "flat"
  root.mkdir()
  rng = np.random.default_rng(0)
  for i in range(10):  # one size: no data.image_size needed
    Image.fromarray(_smooth(rng, 20, 20)).save(root / f"{i}.jpg")
  config = _config(root, image_size=0)
  src = sources.load_source(config.data, "train")
  assert len(src) == 10 and not src.num_classes and src[3]["label"] == -1
  assert sources.image_shape(src, config.data) == (20, 20, 3)
  batch = _batches(config, src, 1)[0]
  assert batch["patches"].shape == (8, 2, 8, 8, 3)
  with pytest.raises(sources.DataError, match="has no labels") as e:
    eval_run.prepare(config)
  assert str(root) in str(e.value) and "\n" not in str(e.value)
  Image.fromarray(_smooth(rng, 24, 20)).save(root / "odd.jpg")
  src = sources.load_source(config.data, "train")
  with pytest.raises(sources.DataError, match="differ in size"):
    sources.image_shape(src, config.data)


def test_prepare_train_eval_binary_end_to_end(tmp_path):
  root = _folder(tmp_path / "data", [(20, 26), (18, 18)], n_train=16,
                 n_test=8)
  env = dict(os.environ, PYTHONPATH=ROOT)
  cmd = [sys.executable, "-m", "bagssl_jax.prepare",
         "--config=configs/fashion_mnist_vicreg.py:runlocal",
         "--config.data.name=image_folder", f"--config.data.path={root}",
         "--config.data.channels=3", "--config.data.image_size=16",
         f"--out={tmp_path / 'prep'}"]
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "ETA" in proc.stderr
  meta = json.loads((tmp_path / "prep" / "metadata.json").read_text())
  assert meta["image_size"] == 16 and meta["splits"]["test"]["count"] == 8
  config = _config(tmp_path / "prep", name="prepared", image_size=0)
  config.total_steps, config.run_eval = 2, False
  config.eval.heldout_every_steps = 0
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir))
  evaluate = [sys.executable, "-m", "bagssl_jax.eval", f"--workdir={workdir}",
              "--config.eval.protocols=('central',)",
              "--config.eval.knn_extra_k=()", "--config.eval.low_shot=()",
              "--config.eval.tsne_images=0", "--config.eval.figures=False",
              "--config.eval.health_images=0"]
  proc = subprocess.run(evaluate, cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((workdir / "eval" / "results.json").read_text())
  assert results["meta"]["data"] == "prepared"
  assert 0 <= results["central"]["linear"] <= 1
  flat = tmp_path / "flat"  # an unlabelled folder: one error line
  flat.mkdir()
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(flat / "0.jpg")
  proc = subprocess.run(evaluate + ["--config.eval.data.name=image_folder",
                                    f"--config.eval.data.path={flat}"],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert len(errors) == 1 and "has no labels" in errors[0], proc.stderr[-2000:]


def test_imagenet_like_folder_has_imagenet_sizes_and_file_size(tmp_path):
  from bagssl_jax.bench import pipeline as bench_pipeline
  kb = bench_pipeline.imagenet_like_folder(str(tmp_path), 5)
  sizes = {Image.open(p).size for p in tmp_path.glob("*.jpg")}
  assert len(list(tmp_path.glob("*.jpg"))) == 5 and 60 < kb < 160
  assert sizes <= {s for s, _ in bench_pipeline.SIZE_MIX}
