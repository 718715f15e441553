"""What every layout shares: key namespaces, strict key checks, tensor
layout conversions (torch OIHW -> HWIO, Linear (out, in) -> (in, out)) and
the projector."""
from __future__ import annotations

import re

import numpy as np
from absl import logging

from bagssl_jax.loaded import CheckpointError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WRAPPERS = ("module.", "_orig_mod.")
BACKBONE_PREFIXES = ("backbone.", "encoder.")
# Heads a feature extractor does not need (classifier, BYOL / MoCo
# predictor, momentum or teacher copies, queues, prototypes).
IGNORED = re.compile(r"^(fc|classifier|head|predictor|momentum_|target_|"
                     r"queue|prototypes|linear)")


def split_keys(tensors, path):
  """{key: array} -> (backbone {key: array}, projector {key: array}).

  Wrapper prefixes (`module.`) go; `backbone.` / `encoder.` keys are the
  backbone when present (else the unprefixed keys are), `projector.*` the
  projector; classifier and predictor heads are ignored (logged)."""
  t = {}
  for k, v in tensors.items():
    for w in _WRAPPERS:
      k = k[len(w):] if k.startswith(w) else k
    t[k] = v
  prefixed = any(k.startswith(BACKBONE_PREFIXES) for k in t)
  backbone, projector, ignored = {}, {}, []
  for k, v in t.items():
    if k.endswith("num_batches_tracked"):
      continue
    if prefixed and k.startswith(BACKBONE_PREFIXES):
      inner = k.split(".", 1)[1]
      if IGNORED.match(inner):
        ignored.append(k)
      else:
        backbone[inner] = v
    elif k.startswith("projector."):
      projector[k[len("projector."):]] = v
    elif IGNORED.match(k) or prefixed:
      ignored.append(k)
    else:
      backbone[k] = v
  if ignored:
    logging.info("%s: ignored %d keys (%s)", path, len(ignored),
                 _names(sorted({k.split(".")[0] for k in ignored})))
  return backbone, projector


def take(tensors, used, key, shape=None):
  """tensors[key] (recorded in `used`), shape-checked."""
  if key not in tensors:
    return None
  v = tensors[key]
  if shape is not None and tuple(v.shape) != tuple(shape):
    raise CheckpointError(f"key {key} has shape {tuple(v.shape)}, expected "
                          f"{tuple(shape)}")
  used.add(key)
  return v


def check_keys(path, tensors, used, missing):
  """One error line naming missing and unknown keys, if any."""
  unknown = sorted(set(tensors) - used)
  if missing or unknown:
    parts = []
    if missing:
      parts.append(f"missing keys {_names(missing)}")
    if unknown:
      parts.append(f"unknown keys {_names(unknown)}")
    raise CheckpointError(f"{path} does not match the architecture: " +
                          "; ".join(parts))


def _names(keys, n=6):
  keys = list(keys)
  more = f" and {len(keys) - n} more" if len(keys) > n else ""
  return ", ".join(keys[:n]) + more


def conv_kernel(w):
  """torch (O, I, kh, kw) -> HWIO."""
  return np.transpose(w, (2, 3, 1, 0))


def dense_kernel(w):
  """torch Linear (out, in) -> (in, out)."""
  return np.transpose(w)


def batch_norm(tensors, used, prefix, missing):
  """(params, batch_stats) of a torch BatchNorm at `prefix` ('' if absent)."""
  out = {}
  for ours, theirs in (("scale", "weight"), ("bias", "bias"),
                       ("mean", "running_mean"), ("var", "running_var")):
    v = take(tensors, used, f"{prefix}.{theirs}")
    if v is None:
      missing.append(f"{prefix}.{theirs}")
    out[ours] = v
  return ({"scale": out["scale"], "bias": out["bias"]},
          {"mean": out["mean"], "var": out["var"]})


def projector(tensors, path):
  """(dims, last_bn, params, batch_stats) of a torch nn.Sequential projector
  (Linear-BN-ReLU)* Linear [BN without affine]; None (z = h, logged) when
  absent or of another shape."""
  if not tensors:
    return None
  mods = {}
  for k, v in tensors.items():
    idx, _, name = k.partition(".")
    if not idx.isdigit():
      logging.warning("%s: projector key %s not understood; z = h", path, k)
      return None
    mods.setdefault(int(idx), {})[name] = v
  order = [mods[i] for i in sorted(mods)]
  kinds = ["bn" if "running_mean" in m else "linear" for m in order]
  n_lin = kinds.count("linear")
  want = ["linear", "bn"] * (n_lin - 1) + ["linear"]
  last_bn = kinds == want + ["bn"] and "weight" not in order[-1]
  if kinds != want and not last_bn:
    logging.warning("%s: projector layers %s are not (Linear-BN-ReLU)* "
                    "Linear; not loaded, z = h", path, kinds)
    return None
  params, stats, dims, li, bi = {}, {}, [], 0, 0
  for m, kind in zip(order, kinds):
    if kind == "linear":
      w = m["weight"]
      dims.append(w.shape[0])
      params[f"dense{li}"] = {"kernel": dense_kernel(w), "bias": m.get(
          "bias", np.zeros(w.shape[0], np.float32))}
      li += 1
    else:
      name = f"bn{li - 1}"
      if "weight" in m:
        params[name] = {"scale": m["weight"], "bias": m["bias"]}
      stats[name] = {"mean": m["running_mean"], "var": m["running_var"]}
      bi += 1
  return tuple(dims), last_bn, params, stats
