"""The path layer on a local folder and on a real GCS API server
(gcp-storage-emulator): atomic writes, exclusive create, JSON-lines appends,
and the workdir lock built on them."""
import json
import os

import pytest

from bagssl_jax import paths
from bagssl_jax import workdir as workdir_lib


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path):
  if request.param == "local":
    return str(tmp_path)
  bucket, _ = request.getfixturevalue("gcs_bucket")
  return f"gs://{bucket}/{request.node.name.replace('[', '_').rstrip(']')}"


def test_write_read_exclusive_and_move(root):
  p = paths.join(root, "a", "x.txt")
  paths.makedirs(paths.join(root, "a"))
  paths.write_text(p, "one")
  paths.write_text(p, "two")
  assert paths.read_text(p) == "two"
  lock = paths.join(root, "a", ".lock")
  paths.create_exclusive(lock, "mine")
  with pytest.raises(paths.ExistsError):
    paths.create_exclusive(lock, "theirs")
  assert paths.read_text(lock) == "mine"
  paths.move(p, paths.join(root, "a", "y.txt"))
  assert not paths.exists(p) and paths.read_text(
      paths.join(root, "a", "y.txt")) == "two"


def test_jsonl_appender_keeps_rows_across_writers(root):
  p = paths.join(root, "metrics.jsonl")
  paths.makedirs(root)
  w = paths.JsonlAppender(p, min_interval=3600)
  w.write({"step": 1})
  w.flush()  # on a bucket: not yet (interval), then forced by close
  w.write({"step": 2})
  w.close()
  w = paths.JsonlAppender(p)  # a resumed run appends after the old rows
  w.write({"step": 3})
  w.close()
  assert [r["step"] for r in paths.read_jsonl(p)] == [1, 2, 3]


def test_workdir_lock_refuses_a_live_owner_and_takes_a_stale_one(root):
  lock = workdir_lib.acquire(root)
  owner = json.loads(paths.read_text(lock))
  other = dict(owner, host="another-host", pid=1)
  paths.write_text(lock, json.dumps(other))
  with pytest.raises(workdir_lib.WorkdirError, match="in use by pid 1 on "
                     "another-host"):
    workdir_lib.acquire(root)
  other["heartbeat"] -= workdir_lib.LEASE_SECONDS + 1  # its owner is gone
  paths.write_text(lock, json.dumps(other))
  assert workdir_lib.acquire(root) == lock
  workdir_lib.release(lock)
  assert not paths.exists(lock)


def test_bucket_paths_write_nothing_locally(gcs_bucket, tmp_path):
  os.chdir(tmp_path)
  bucket, _ = gcs_bucket
  paths.makedirs(f"gs://{bucket}/nolocal/x")
  paths.write_text(f"gs://{bucket}/nolocal/x/y", "z")
  assert os.listdir(tmp_path) == []


def test_image_folder_on_a_bucket_is_one_clear_error():
  from bagssl_jax.data import sources  # pylint: disable=g-import-not-at-top
  with pytest.raises(sources.DataError, match="local or mounted filesystem"):
    sources.ImageFolderSource("gs://b/images", "train", 3)
