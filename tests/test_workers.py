"""Batches built in grain worker processes, their hand-off and their failure;
decoding at the size the model needs; ImageNet's train/ val/ layout."""
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from bagssl_jax.data import DataError, batches, pipeline, sources, views
from conftest import load_config


def _smooth(rng, h, w):
  y, x = np.mgrid[:h, :w] / max(h, w)
  a, b, c = rng.uniform(0, 1, 3)
  im = np.stack([a * x + (1 - a) * y, b * y, c * (1 - x)], -1)
  return (np.clip(im, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """Variable-size JPEGs and PNGs in two classes, train/ and val/."""
  root = tmp_path_factory.mktemp("folder")
  rng = np.random.default_rng(0)
  sizes = [(40, 52), (60, 36), (33, 33), (90, 120)]
  for split, n in (("train", 24), ("val", 6)):
    for i in range(n):
      d = root / split / f"c{i % 2}"
      d.mkdir(parents=True, exist_ok=True)
      h, w = sizes[i % len(sizes)]
      Image.fromarray(_smooth(rng, h, w)).save(
          d / (f"{i}.jpg" if i % 3 else f"{i}.png"))
  return root


def _config(root, crop, workers, threads=1):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  config.data.update(name="image_folder", path=str(root), channels=3,
                     image_size=20, mean=(0.5,) * 3, std=(0.25,) * 3,
                     num_workers=workers, read_threads=threads, prefetch=2)
  config.patch_size, config.batch_size, config.crop = 8, 8, crop
  config.num_patches = 3
  return config


def _take(config, n):
  source = sources.load_source(config.data, "train")
  it = pipeline.make_train_iterator(config, source)
  out = [next(it) for _ in range(n)]
  it.close()
  return out


@pytest.mark.parametrize("crop", ["patches", "rrc", "multicrop"])
def test_batches_built_in_workers_equal_one_process(folder, crop):
  """Two worker processes with two read threads each deliver, batch for
  batch and element for element, what one process builds alone."""
  alone = _take(_config(folder, crop, workers=0), 5)
  workers = _take(_config(folder, crop, workers=2, threads=2), 5)
  for a, b in zip(alone, workers):
    assert sorted(a) == sorted(b)
    for key in a:
      assert a[key].dtype == b[key].dtype, key
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert alone[0]["label"].shape == (8,)
  if crop == "patches":
    assert alone[0]["patches"].shape == (8, 3, 8, 8, 3)
  else:
    assert alone[0]["image"].shape == (8, 20, 20, 3)


def test_per_image_cut_equals_the_batch_cut(folder):
  """Patches cut image by image where decoded are those the vectorised cut
  of the stacked, preprocessed batch gives."""
  config = _config(folder, "patches", workers=0)
  source = sources.load_source(config.data, "train")
  spec = pipeline.CropSpec.from_config(config)
  rows = np.stack([np.arange(100, 108), np.arange(8) * 3 % 24], 1)
  got = batches.ReadAndCrop(source, 3, 20, spec).map(rows)
  images, labels = views.read_batch(source, rows[:, 1], 3, 20)
  want = views.crop_views(images, labels, rows[:, 0], spec)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])


def test_block_round_trip_keeps_names_dtypes_and_alignment():
  fields = {"patches": ((4, 2, 3, 3, 3), np.uint8), "boxes": ((4, 2, 4),
                                                                np.float32),
            "label": ((4,), np.int32)}
  buf, arrays, layout = batches.allocate(fields)
  for k, v in arrays.items():
    v[...] = np.arange(v.size).reshape(v.shape)
  assert all(off % 64 == 0 for _, _, _, off in layout)
  back = batches.unpack({"block": buf, "layout": layout, "worker": (0, 1)})
  for k, (shape, dtype) in fields.items():
    assert back[k].shape == shape and back[k].dtype == dtype
    np.testing.assert_array_equal(back[k], arrays[k])


def test_a_killed_worker_is_one_data_error_naming_it(folder):
  config = _config(folder, "patches", workers=2)
  it = pipeline.make_train_iterator(config,
                                    sources.load_source(config.data, "train"))
  next(it)
  next(it)
  pids = {i: pid for i, pid in it._pids.items()}  # pylint: disable=protected-access
  assert sorted(pids) == [0, 1]
  os.kill(pids[1], signal.SIGKILL)
  start = time.time()
  with pytest.raises(DataError) as e:
    for _ in range(100):
      next(it)
  assert time.time() - start < 60
  msg = str(e.value)
  assert f"data worker 1 of 2 (pid {pids[1]})" in msg
  assert "signal 9 (SIGKILL" in msg and "read_threads" in msg
  assert "\n" not in msg
  it.close()


def test_jpeg_decoded_at_reduced_size_stays_close_to_full_decode(tmp_path):
  """A JPEG at least twice the target is decoded by DCT scaling; the result
  is within a few levels of decoding in full, and PNGs (no draft) equal
  `preprocess_image` of the full decode exactly."""
  rng = np.random.default_rng(1)
  image = _smooth(rng, 300, 400)
  for name in ("a.jpg", "b.png"):
    Image.fromarray(image).save(tmp_path / name, quality=95)
  src = sources.ImageFolderSource(str(tmp_path), "train", 3)
  for i, name in enumerate(src.files):
    fast, _ = src.read_preprocessed(i, 3, 64)
    with Image.open(name) as im:
      full = views.preprocess_image(np.asarray(im.convert("RGB")), 3, 64)
    assert fast.shape == full.shape == (64, 64, 3)
    err = np.abs(fast.astype(int) - full.astype(int))
    if name.endswith(".png"):
      assert err.max() == 0
    else:
      with Image.open(name) as im:
        im.draft("RGB", (86, 64))  # the resize before the 64-px crop
        assert im.size == (100, 75)  # decoded at 1/4 scale
      assert err.mean() < 2.0 and err.max() <= 12


def test_one_pass_resize_crop_matches_resize_then_crop():
  """`resize_crop` computes only the centre square, within one level of
  resizing the whole image and cropping."""
  rng = np.random.default_rng(2)
  for h, w in ((375, 500), (500, 333), (64, 64), (30, 200)):
    image = rng.integers(0, 256, (h, w, 3), np.uint8)
    scale = 24 / min(h, w)
    nh, nw = max(24, round(h * scale)), max(24, round(w * scale))
    whole = np.asarray(Image.fromarray(image).resize((nw, nh),
                                                     Image.BILINEAR))
    top, left = (nh - 24) // 2, (nw - 24) // 2
    want = whole[top:top + 24, left:left + 24].astype(int)
    got = views.preprocess_image(image, 3, 24).astype(int)
    assert np.abs(got - want).max() <= 1


def test_imagenet_layout_val_folder_is_the_validation_split(folder):
  config = load_config("imagenet_vicreg", "runlocal")
  config.data.update(name="image_folder", path=str(folder))
  assert config.data.test_split == "validation"
  source = sources.load_source(config.data, "validation")
  assert len(source) == 6 and source.folder == str(folder / "val")
  assert source.num_classes == 2
  with pytest.raises(DataError, match="does not exist"):
    sources.load_source(config.data, "holdout")


def test_an_untagged_image_by_image_state_is_refused_not_misread(folder):
  """A data position saved by the image-by-image pipeline counted images:
  a decoding source refuses it with one DataError; in-memory sources, whose
  elements were batches before too, take it."""
  config = _config(folder, "patches", workers=0)
  it = pipeline.make_train_iterator(config,
                                    sources.load_source(config.data, "train"))
  next(it)
  state = it.get_state()
  assert state["bagssl_batches"] == batches.STATE_VERSION
  with pytest.raises(DataError, match="before 78a3dad"):
    it.set_state(state["grain"])
  rng = np.random.default_rng(4)
  memory = sources.ArraySource(rng.integers(0, 256, (32, 20, 20, 3), np.uint8),
                               np.arange(32, dtype=np.int32) % 2, 2)
  config.data.image_size = 0
  a = pipeline.make_train_iterator(config, memory)
  for _ in range(3):
    next(a)
  b = pipeline.make_train_iterator(config, memory)
  b.set_state(a.get_state()["grain"])  # untagged: taken as is
  want, got = next(a)["patches"], next(b)["patches"]
  np.testing.assert_array_equal(got, want)
  assert not np.array_equal(got, next(pipeline.make_train_iterator(
      config, memory))["patches"])  # not the first batch again
