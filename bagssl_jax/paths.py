"""One path layer for every file a run reads or writes: local folders and
buckets (`gs://`, any fsspec scheme) through `etils.epath`, as orbax does.

A bucket needs the optional extra (`pip install gcsfs google-cloud-storage`).
Object stores have no rename and no append, so:
  - `write_text` is atomic on both: a local file is written to a temporary
    name and renamed; an object upload is all-or-nothing;
  - `JsonlAppender` appends lines locally and rewrites the object on a bucket
    (at most every `min_interval` seconds, and on `flush(force=True)`);
  - `create_exclusive` creates a file only if absent (`os.link` locally, a
    generation-0 precondition on GCS), which the workdir lock relies on.
"""
from __future__ import annotations

import json
import os
import time

from etils import epath


def is_remote(path) -> bool:
  return "://" in os.fspath(path)


def path(p) -> epath.Path:
  """An epath.Path; local paths are made absolute (orbax needs that)."""
  p = os.fspath(p)
  return epath.Path(p if is_remote(p) else os.path.abspath(p))


def join(p, *parts) -> str:
  return os.fspath(path(p).joinpath(*parts))


def exists(p) -> bool:
  return path(p).exists()


def is_dir(p) -> bool:
  return path(p).is_dir()


def makedirs(p) -> None:
  path(p).mkdir(parents=True, exist_ok=True)


def read_text(p) -> str:
  return path(p).read_text()


def write_text(p, text: str) -> None:
  """Writes a whole file atomically (readers see the old or the new text)."""
  write_bytes(p, text.encode())


def write_bytes(p, data: bytes) -> None:
  """Writes a whole file atomically: locally a temporary file renamed over
  `p`; on a bucket one upload (an object appears whole)."""
  p = path(p)
  if is_remote(p):
    p.write_bytes(data)
    return
  tmp = p.parent / f"{p.name}.{os.getpid()}.tmp"
  tmp.write_bytes(data)
  os.replace(tmp, p)


def remove(p) -> None:
  p = path(p)
  if p.exists():
    p.unlink()


def move(src, dst) -> None:
  """Renames locally; copies then deletes on a bucket (no rename there)."""
  src, dst = path(src), path(dst)
  if not is_remote(src):
    os.replace(src, dst)
    return
  if src.is_dir():
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
      move(child, dst / child.name)
    src.rmtree(missing_ok=True)
  else:
    src.copy(dst, overwrite=True)
    src.unlink()


class ExistsError(FileExistsError):
  pass


def create_exclusive(p, text: str) -> None:
  """Creates `p` holding `text` if it does not exist; else ExistsError.

  Atomic locally (hard link of a temporary file) and on GCS (an upload with
  `if_generation_match=0`). On other object stores it is check-then-write:
  two writers starting within the same second can both succeed.
  """
  p = path(p)
  spec = os.fspath(p)
  if spec.startswith("gs://"):
    _gcs_create_exclusive(spec, text)
  elif is_remote(spec):
    if p.exists():
      raise ExistsError(spec)
    p.write_text(text)
  else:
    tmp = p.parent / f"{p.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    try:
      os.link(tmp, p)
    except FileExistsError:
      raise ExistsError(spec) from None
    finally:
      tmp.unlink(missing_ok=True)


def _gcs_create_exclusive(spec, text):
  from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import storage  # pylint: disable=g-import-not-at-top
  bucket, _, name = spec[len("gs://"):].partition("/")
  blob = _gcs_client(storage).bucket(bucket).blob(name)
  if blob.exists():  # servers that ignore preconditions (emulators)
    raise ExistsError(spec)
  try:
    blob.upload_from_string(text, if_generation_match=0)
  except exceptions.PreconditionFailed:
    raise ExistsError(spec) from None


def _gcs_client(storage):
  if os.environ.get("STORAGE_EMULATOR_HOST"):
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=g-import-not-at-top
    return storage.Client(credentials=AnonymousCredentials(),
                          project=os.environ.get("GOOGLE_CLOUD_PROJECT", "x"))
  return storage.Client()


def read_jsonl(p) -> list[dict]:
  """The rows of a JSON-lines file ([] if it does not exist)."""
  p = path(p)
  if not p.exists():
    return []
  rows = []
  for line in p.read_text().splitlines():
    line = line.strip()
    if line:
      try:
        rows.append(json.loads(line))
      except ValueError:
        continue  # a line cut by a kill
  return rows


class JsonlAppender:
  """Appends JSON rows to a file: a real append locally; on a bucket the
  object is rewritten with every row so far (at most every `min_interval`
  seconds, and on `flush(force=True)` / `close()`)."""

  def __init__(self, p, min_interval=30.0):
    self._path = path(p)
    self._remote = is_remote(self._path)
    self._min_interval = min_interval
    if self._remote:
      self._lines = [json.dumps(r) for r in read_jsonl(self._path)]
      self._dirty, self._last = False, 0.0
    else:
      self._file = open(self._path, "a")  # pylint: disable=consider-using-with

  def write(self, row: dict) -> None:
    if self._remote:
      self._lines.append(json.dumps(row))
      self._dirty = True
    else:
      self._file.write(json.dumps(row) + "\n")

  def flush(self, force=False) -> None:
    if not self._remote:
      self._file.flush()
    elif self._dirty and (force or
                          time.time() - self._last >= self._min_interval):
      self._path.write_text("".join(l + "\n" for l in self._lines))
      self._dirty, self._last = False, time.time()

  def close(self) -> None:
    self.flush(force=True)
    if not self._remote:
      self._file.close()
