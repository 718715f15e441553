"""Sources, patch extraction and the grain pipeline."""
import gzip
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bagssl_jax.data import patches, pipeline, sources
from tests.conftest import load_config


def _write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (("train", 40), ("t10k", 12)):
    _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz",
               rng.integers(0, 256, (n, 28, 28)))
    _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz",
               rng.integers(0, 10, (n,)))
  return str(tmp_path)


def test_idx_source_reads_images_and_labels(idx_folder):
  src = sources.load_source(ml_collections.ConfigDict(
      {"name": "fashion_mnist", "path": idx_folder}), "test")
  assert len(src) == 12 and src.image_shape == (28, 28, 1)
  item = src[3]
  assert item["image"].dtype == np.uint8 and item["image"].shape == (28, 28, 1)
  assert 0 <= item["label"] < 10


def test_truncated_idx_file_is_a_data_error(tmp_path, idx_folder):
  path = os.path.join(idx_folder, "t10k-images-idx3-ubyte.gz")
  with gzip.open(path) as f:
    data = f.read()
  with gzip.open(path, "wb") as f:
    f.write(data[:1000])
  with pytest.raises(sources.DataError, match="truncated"):
    sources.fashion_mnist_idx(idx_folder, "test")


def test_missing_fashion_mnist_names_both_ways(tmp_path):
  cfg = ml_collections.ConfigDict({"name": "fashion_mnist",
                                   "path": str(tmp_path / "nothing")})
  with pytest.raises(sources.DataError) as e:
    sources.load_source(cfg, "train")
  msg = str(e.value)
  assert "dataset-fashion-mnist" in msg and "tfds build" in msg
  assert "\n" not in msg


@pytest.mark.skipif(not os.path.isdir(sources.DEBIAN_FASHION_MNIST),
                    reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
  src = sources.load_source(ml_collections.ConfigDict(
      {"name": "fashion_mnist", "path": ""}), "train")
  assert len(src) == 60000 and src.num_classes == 10
  assert set(np.unique(src.labels)) == set(range(10))


def test_random_positions_in_range_and_deterministic():
  pos = patches.random_positions(7, np.arange(5000), 3, (28, 20), 14)
  assert pos.shape == (5000, 3, 2)
  assert pos[..., 0].min() == 0 and pos[..., 0].max() == 14
  assert pos[..., 1].min() == 0 and pos[..., 1].max() == 6
  np.testing.assert_array_equal(
      pos[100:200], patches.random_positions(7, np.arange(100, 200), 3,
                                             (28, 20), 14))
  other_seed = patches.random_positions(8, np.arange(5000), 3, (28, 20), 14)
  assert (other_seed != pos).mean() > 0.5
  # The two patches of an image are not the same position (mostly).
  assert (pos[:, 0] != pos[:, 1]).any(-1).mean() > 0.9


def test_extract_patches_matches_slices():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8)
  pos = patches.random_positions(0, np.arange(4), 2, (28, 28), 14)
  out = patches.extract_patches(images, pos, 14)
  assert out.shape == (4, 2, 14, 14, 3)
  for b in range(4):
    for j in range(2):
      y, x = pos[b, j]
      np.testing.assert_array_equal(out[b, j], images[b, y:y + 14, x:x + 14])


def test_grid_positions_cover_the_image():
  grid = patches.grid_positions((28, 28), 14, 2)
  assert grid.shape == (64, 2)
  assert grid.min() == 0 and grid.max() == 14
  grid = patches.grid_positions((28, 30), 14, 7)
  np.testing.assert_array_equal(np.unique(grid[:, 0]), [0, 7, 14])
  np.testing.assert_array_equal(np.unique(grid[:, 1]), [0, 7, 14, 16])


def test_preprocess_resizes_and_converts_channels():
  rgba = np.zeros((47, 17, 4), np.uint8)
  out = pipeline.preprocess_image(rgba, 3, 32)
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  gray = pipeline.preprocess_image(np.full((30, 40, 3), 200, np.uint8), 1)
  assert gray.shape == (30, 40, 1) and int(gray[0, 0, 0]) == 200
  assert pipeline.preprocess_image(np.zeros((28, 28), np.uint8), 3).shape == (
      28, 28, 3)


def _collect(config, source, process_index, process_count, steps):
  it = pipeline.make_train_iterator(config, source, process_index,
                                    process_count)
  return [next(it) for _ in range(steps)]


def test_train_batches_same_for_any_process_count(idx_folder):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.path = idx_folder
  src = sources.load_source(config.data, "train")
  one = _collect(config, src, 0, 1, 3)
  for n in (2, 4):
    blocks = [_collect(config, src, p, n, 3) for p in range(n)]
    for step in range(3):
      assert one[step]["patches"].shape == (16, 2, 14, 14, 1)
      # Process p holds rows [p * 16 / n, (p + 1) * 16 / n) of each global
      # batch: concatenated in process order they are the 1-process batch,
      # row for row (patch positions included).
      for key in ("patches", "label"):
        np.testing.assert_array_equal(
            np.concatenate([b[step][key] for b in blocks]), one[step][key])


def test_train_iterator_reshuffles_each_epoch(idx_folder):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.path = idx_folder
  config.batch_size = 40
  src = sources.load_source(config.data, "train")
  epoch1, epoch2 = _collect(config, src, 0, 1, 2)
  assert sorted(epoch1["label"].tolist()) == sorted(src.labels.tolist())
  assert epoch1["label"].tolist() != epoch2["label"].tolist()


def test_tfds_mock_source_and_eval_batches():
  with tfds.testing.mock_data(num_examples=10):
    src = sources.load_source(ml_collections.ConfigDict(
        {"name": "imagenet2012", "path": ""}), "validation")
    assert len(src) == 10 and src.num_classes == 1000
    batches = list(pipeline.eval_batches(src, 4, 3, image_size=32))
  assert [b["mask"].sum() for b in batches] == [4, 4, 2]
  assert batches[-1]["image"].shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(batches[1]["index"], [4, 5, 6, 7])


def test_unprepared_tfds_dataset_is_a_clear_error(tmp_path):
  cfg = ml_collections.ConfigDict({"name": "cifar10", "path": str(tmp_path)})
  with pytest.raises(sources.DataError, match="tfds build cifar10"):
    sources.load_source(cfg, "train")


def _write_image_folder(root):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  modes = {"RGB": 3, "L": 1, "RGBA": 4}
  for split, n in (("train", 6), ("test", 3)):
    for c, cls in enumerate(("cat", "dog")):
      os.makedirs(root / split / cls)
      for i in range(n):
        mode = list(modes)[i % 3]
        h, w = 20 + 3 * i, 24 + c
        shape = (h, w, modes[mode]) if modes[mode] > 1 else (h, w)
        Image.fromarray(rng.integers(0, 256, shape, np.uint8), mode).save(
            root / split / cls / f"{i}.{'png' if i % 2 else 'jpg'}"
            if mode != "RGBA" else root / split / cls / f"{i}.png")


def test_image_folder_source_any_size_and_mode(tmp_path):
  from bagssl_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  _write_image_folder(tmp_path)
  data = config_lib.base_config().data
  data.update(name="image_folder", path=str(tmp_path), channels=3,
              image_size=16)
  train = sources.load_source(data, "train")
  test = sources.load_source(data, "test")
  assert (len(train), len(test), train.num_classes) == (12, 6, 2)
  assert train.classes == test.classes == ["cat", "dog"]
  assert sources.image_shape(train, data) == (16, 16, 3)
  batches = list(pipeline.eval_batches(test, 4, 3, image_size=16))
  assert [b["image"].shape for b in batches] == [(4, 16, 16, 3)] * 2
  np.testing.assert_array_equal(
      np.concatenate([b["label"][b["mask"]] for b in batches]),
      [0, 0, 0, 1, 1, 1])
  data.channels = 1
  assert sources.load_source(data, "train")[0]["image"].shape[-1] == 1


def test_image_folder_missing_or_empty_is_a_clear_error(tmp_path):
  from bagssl_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  data = config_lib.base_config().data
  data.update(name="image_folder", path=str(tmp_path / "nope"))
  with pytest.raises(sources.DataError, match="nope/train does not exist"):
    sources.load_source(data, "train")
  os.makedirs(tmp_path / "empty" / "train" / "a")
  data.path = str(tmp_path / "empty")
  with pytest.raises(sources.DataError, match="has no images"):
    sources.load_source(data, "train")
  data.path = ""
  with pytest.raises(sources.DataError, match="needs data.path"):
    sources.load_source(data, "train")
