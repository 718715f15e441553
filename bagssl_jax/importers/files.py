"""Reading a checkpoint file into a flat {name: numpy array} dict.

.safetensors and .npz need no torch; .pth / .pt / .ckpt (torch pickles,
Lightning checkpoints) are read with torch when it is installed.
"""
from __future__ import annotations

import io
import os

import numpy as np

from bagssl_jax import paths
from bagssl_jax.loaded import CheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".tar")
# Where trainers nest the weights (DINO's full checkpoints: the teacher).
_NESTED = ("state_dict", "teacher", "model", "module", "net")


def read_tensors(path) -> dict:
  """Flat {key: float32 numpy array} of the checkpoint at `path` (a local
  file or a bucket object, read through `paths`)."""
  path = os.fspath(path)
  try:
    found = paths.exists(path) and not paths.is_dir(path)
  except (OSError, ImportError) as e:
    raise CheckpointError(f"cannot read {path}: {_first(e)}") from None
  if not found:
    raise CheckpointError(f"no checkpoint file {path}")
  name = path.lower()
  try:
    if name.endswith(".safetensors"):
      from safetensors.numpy import load  # pylint: disable=g-import-not-at-top
      return _as_numpy(load(paths.path(path).read_bytes()))
    if name.endswith(".npz"):
      with np.load(io.BytesIO(paths.path(path).read_bytes()),
                   allow_pickle=False) as f:
        return _as_numpy({k: f[k] for k in f.files})
  except CheckpointError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"cannot read {path}: {_first(e)}") from None
  if name.endswith(TORCH_SUFFIXES):
    return _read_torch(path)
  raise CheckpointError(f"{path}: unknown checkpoint format (use .pth, .pt, "
                        ".ckpt, .safetensors or .npz)")


def _read_torch(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise CheckpointError(
        f"{path} is a torch checkpoint and torch is not installed: `pip "
        "install torch` (CPU is enough), or convert it to .safetensors / "
        ".npz") from None
  data = paths.path(path).read_bytes()
  try:
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
  except Exception:  # pylint: disable=broad-except
    # Lightning checkpoints pickle their hyper-parameters (omegaconf objects
    # and the like): the file the user named is trusted as a full pickle.
    try:
      obj = torch.load(io.BytesIO(data), map_location="cpu",
                       weights_only=False)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"cannot read {path}: {_first(e)}") from None
  state = _unnest(obj)
  return {k: v.detach().float().numpy() for k, v in state.items()
          if hasattr(v, "detach")}


def _unnest(obj):
  """The dict of tensors inside a trainer's checkpoint dict."""
  for _ in range(3):
    if not isinstance(obj, dict):
      break
    inner = next((obj[k] for k in _NESTED if isinstance(obj.get(k), dict)),
                 None)
    if inner is None or any(hasattr(v, "shape") for v in obj.values()):
      break
    obj = inner
  if not isinstance(obj, dict):
    raise CheckpointError(f"the checkpoint holds a {type(obj).__name__}, not "
                          "a state dict")
  return obj


def _as_numpy(d):
  return {k: np.asarray(v, np.float32) for k, v in d.items()}


def _first(e):
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"
