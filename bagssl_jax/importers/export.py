"""Trained backbones written in PyTorch's layouts (`python -m
bagssl_jax.export`, `LoadedModel.export`).

Layouts (the importers' key tables, used the other way round):
- `torchvision`: ResNet-18/34/50 with the standard stem, width 64 ->
  `torchvision.models.resnet50()`'s keys, BatchNorm running statistics and
  `num_batches_tracked` included, no `fc` (load with `strict=False`, or
  strictly into a model whose `fc` is `torch.nn.Identity()`).
- `solo-learn`: the CIFAR ResNet solo-learn trains (3x3 stride-1 stem with
  padding 2, no max-pool) -> `backbone.*`.
- `timm`: ViTs of timm's sizes (tiny, small, base) -> timm's `vit_*` keys
  (the [CLS] token holds its position embedding; timm's is zero).
`--with_projector` adds the projector as `projector.*` (an nn.Sequential of
Linear, BatchNorm1d, ReLU, ...). Only a model the layout holds exactly is
written: any other stem, width, padding or activation is one error line
naming what differs. FILE is .safetensors (no torch needed) or .pth (torch);
FILE.json beside it gives the architecture, input size, normalisation,
layout, keys, the run's config and step.
"""
from __future__ import annotations

import json
import os

import numpy as np

from bagssl_jax import paths
from bagssl_jax.importers import timm as timm_layout
from bagssl_jax.importers import torchvision as tv_layout
from bagssl_jax.loaded import CheckpointError
from bagssl_jax.models import vit

LAYOUTS = ("torchvision", "solo-learn", "timm")


def _differences(config, layout):
  """(arch, [what differs from the layout's architecture])."""
  m, channels = config.model, config.data.channels
  if layout == "timm":
    if m.name not in vit.VIT_SIZES:
      return m.name, [f"model.name is {m.name!r}, not a ViT"]
    want = vit.VIT_SIZES[m.name]
    got = vit.vit_size(m)
    diff = [f"model.vit_{k} is {g}, timm's {m.name} has {w}"
            for k, g, w in zip(("dim", "depth", "heads"), got, want) if g != w]
    if not m.get("exact_gelu", False):
      diff.append("model.exact_gelu is False (tanh GELU), timm's is exact")
    return m.name, diff + ([f"data.channels is {channels}, timm's is 3"]
                           if channels != 3 else [])
  if m.name != "resnet":
    return m.name, [f"model.name is {m.name!r}, not a ResNet"]
  cifar = layout == "solo-learn"
  want = dict(cifar_stem=cifar, width=64, stage_widths=(), expand_width=0,
              torch_padding=True, stem_padding=2 if cifar else -1)
  diff = [f"model.{k} is {m.get(k, d)!r}, {layout}'s is {want[k]!r}"
          for k, d in (("cifar_stem", True), ("width", 64),
                       ("stage_widths", ()), ("expand_width", 0),
                       ("torch_padding", False), ("stem_padding", -1))
          if _norm(m.get(k, d)) != _norm(want[k])]
  if m.depth not in tv_layout.ARCHS:
    diff.append(f"model.depth is {m.depth!r}, {layout} has "
                f"{', '.join(tv_layout.ARCHS)}")
  if channels != 3:
    diff.append(f"data.channels is {channels}, {layout}'s is 3")
  return m.depth, diff


def _norm(v):
  return tuple(v) if isinstance(v, (list, tuple)) else v


def check(config, layout):
  """The layout's architecture name; CheckpointError naming what differs."""
  if layout not in LAYOUTS:
    raise CheckpointError(f"unknown layout {layout!r} (use "
                          f"{', '.join(LAYOUTS)})")
  arch, diff = _differences(config, layout)
  if diff:
    raise CheckpointError(
        f"this model is not {layout}'s {arch}: " + "; ".join(diff) +
        " (a file of it would load in PyTorch but compute something else)")
  return arch


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return np.asarray(tree, np.float32)


def resnet_tensors(params, stats, arch):
  """torchvision state dict of a backbone's params / batch_stats."""
  convs = 3 if tv_layout.resnet.BOTTLENECK[arch] else 2
  downsample = lambda i, j, _: f"Conv_{convs}" in params[
      f"stage{i + 1}_block{j + 1}"]
  out = {}
  for kind, ours, theirs in tv_layout.resnet_keys(arch, downsample):
    if kind == "conv":
      out[f"{theirs}.weight"] = _get(params, ours + ("kernel",)).transpose(
          3, 2, 0, 1)
    else:
      out[f"{theirs}.weight"] = _get(params, ours + ("scale",))
      out[f"{theirs}.bias"] = _get(params, ours + ("bias",))
      out[f"{theirs}.running_mean"] = _get(stats, ours + ("mean",))
      out[f"{theirs}.running_var"] = _get(stats, ours + ("var",))
      out[f"{theirs}.num_batches_tracked"] = np.zeros((), np.int64)
  return out


def projector_tensors(params, stats):
  """nn.Sequential(Linear, BatchNorm1d, ReLU, ..., Linear[, BatchNorm1d])
  keys of the projector (`common.projector` reads them back)."""
  out, i, k = {}, 0, 0
  while f"dense{k}" in params:
    out[f"{i}.weight"] = _get(params, (f"dense{k}", "kernel")).T
    out[f"{i}.bias"] = _get(params, (f"dense{k}", "bias"))
    i += 1
    if f"bn{k}" in stats:
      if f"bn{k}" in params:
        out[f"{i}.weight"] = _get(params, (f"bn{k}", "scale"))
        out[f"{i}.bias"] = _get(params, (f"bn{k}", "bias"))
      out[f"{i}.running_mean"] = _get(stats, (f"bn{k}", "mean"))
      out[f"{i}.running_var"] = _get(stats, (f"bn{k}", "var"))
      out[f"{i}.num_batches_tracked"] = np.zeros((), np.int64)
      i += 2  # BatchNorm1d, ReLU
    k += 1
  return out


def vit_tensors(params, arch, channels):
  """timm keys of a ViT backbone (the inverse of `importers.timm`)."""
  dim, depth, heads = vit.VIT_SIZES[arch]
  pos = _get(params, ("pos_embed",))
  kernel = _get(params, ("patch_embed", "kernel"))
  patch = int(round((kernel.shape[0] / channels) ** 0.5))
  out = {
      "cls_token": _get(params, ("cls_token",)),
      "pos_embed": np.concatenate([np.zeros((1, 1, dim), np.float32),
                                   pos.reshape(1, -1, dim)], axis=1),
      "patch_embed.proj.weight": kernel.reshape(
          patch, patch, channels, dim).transpose(3, 2, 0, 1),
      "patch_embed.proj.bias": _get(params, ("patch_embed", "bias")),
      "norm.weight": _get(params, ("norm", "scale")),
      "norm.bias": _get(params, ("norm", "bias"))}
  for i in range(depth):
    b, p = f"blocks.{i}", params[f"block{i}"]
    attn = p["MultiHeadDotProductAttention_0"]
    out[f"{b}.attn.qkv.weight"] = np.concatenate([_get(
        attn, (n, "kernel")).reshape(dim, dim).T for n in (
            "query", "key", "value")])
    out[f"{b}.attn.qkv.bias"] = np.concatenate([_get(
        attn, (n, "bias")).reshape(dim) for n in ("query", "key", "value")])
    out[f"{b}.attn.proj.weight"] = _get(attn, ("out", "kernel")).reshape(
        dim, dim).T
    out[f"{b}.attn.proj.bias"] = _get(attn, ("out", "bias"))
    for ours, theirs in (("LayerNorm_0", "norm1"), ("LayerNorm_1", "norm2")):
      out[f"{b}.{theirs}.weight"] = _get(p, (ours, "scale"))
      out[f"{b}.{theirs}.bias"] = _get(p, (ours, "bias"))
    for ours, theirs in (("Dense_0", "fc1"), ("Dense_1", "fc2")):
      out[f"{b}.mlp.{theirs}.weight"] = _get(p, ("Mlp_0", ours, "kernel")).T
      out[f"{b}.mlp.{theirs}.bias"] = _get(p, ("Mlp_0", ours, "bias"))
  assert set(out) == set(timm_layout.expected_keys(depth))
  return out, patch


def state_dict(loaded, layout, with_projector=False):
  """({key: numpy array}, metadata) of `loaded` (a LoadedModel) in
  `layout`; CheckpointError if the layout cannot hold it exactly."""
  config = loaded.config
  arch = check(config, layout)
  params, stats = loaded.params["backbone"], loaded.batch_stats.get(
      "backbone", {})
  meta = {"layout": layout, "architecture": arch,
          "input_size": int(config.input_size),
          "mean": list(config.data.mean), "std": list(config.data.std),
          "step": int(loaded.step)}
  if layout == "timm":
    tensors, patch = vit_tensors(params, arch, config.data.channels)
    grid = tensors["pos_embed"].shape[1] - 1
    side = int(round(grid ** 0.5)) * patch
    meta.update(timm_model=f"{arch}_patch{patch}_{side}", image_size=side,
                note="timm's VisionTransformer(num_classes=0): loads with "
                "strict=True; the [CLS] token holds its position embedding")
  else:
    tensors = resnet_tensors(params, stats, arch)
    if layout == "solo-learn":
      tensors = {f"backbone.{k}": v for k, v in tensors.items()}
      meta["note"] = ("solo-learn's CIFAR ResNet (conv1 3x3 stride 1 "
                      "padding 2, maxpool Identity), `backbone.*` keys")
    else:
      meta["note"] = (f"torchvision.models.{arch}() without fc: "
                      "load_state_dict(sd, strict=False), or strict=True "
                      "after model.fc = torch.nn.Identity()")
  if with_projector:
    if "projector" not in loaded.params:
      raise CheckpointError("--with_projector: this model has no projector")
    tensors.update({f"projector.{k}": v for k, v in projector_tensors(
        loaded.params["projector"],
        loaded.batch_stats.get("projector", {})).items()})
  meta["keys"] = len(tensors)
  return tensors, meta


def export_model(loaded, path, layout, with_projector=False):
  """Writes `path` (.safetensors, or .pth with torch) and `path`.json;
  returns the metadata."""
  path = os.fspath(path)
  if not path.endswith((".safetensors", ".pth", ".pt")):
    raise CheckpointError(f"{path}: use a .safetensors or .pth file name")
  tensors, meta = state_dict(loaded, layout, with_projector)
  meta["config"] = json.loads(loaded.config.to_json_best_effort())
  tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
  if path.endswith(".safetensors"):
    from safetensors.numpy import save  # pylint: disable=g-import-not-at-top
    paths.path(path).write_bytes(save(tensors))
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise CheckpointError(f"{path}: a .pth file needs torch (`pip install "
                            "torch`); .safetensors does not") from None
    import io  # pylint: disable=g-import-not-at-top
    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, buf)
    paths.path(path).write_bytes(buf.getvalue())
  paths.path(path + ".json").write_text(json.dumps(meta, indent=1))
  return meta
