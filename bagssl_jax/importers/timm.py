"""timm / DINO / SelfPatch ViTs: `cls_token`, `pos_embed` (1, 1 + N, D),
`patch_embed.proj` (a stride-p convolution), `blocks.<i>.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`; `head.*` ignored.

Here the [CLS] token gets no position embedding of its own, so timm's
[CLS] position embedding is added to the imported [CLS] token (exact)."""
from __future__ import annotations

import math

import numpy as np

from bagssl_jax.importers import common
from bagssl_jax.models import vit

ARCHS = tuple(vit.VIT_SIZES)  # vit_tiny, vit_small, vit_base
MEAN, STD = common.IMAGENET_MEAN, common.IMAGENET_STD
INPUT_SIZE = 224


def expected_keys(depth):
  block = [f"norm{i}.{p}" for i in (1, 2) for p in ("weight", "bias")] + [
      f"{m}.{p}" for m in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
      for p in ("weight", "bias")]
  return ["cls_token", "pos_embed", "patch_embed.proj.weight",
          "patch_embed.proj.bias", "norm.weight", "norm.bias"] + [
              f"blocks.{i}.{k}" for i in range(depth) for k in block]


def convert(tensors, arch, path):
  t, _ = common.split_keys(tensors, path)
  dim, depth, heads = vit.VIT_SIZES[arch]
  keys = expected_keys(depth)
  common.check_keys(path, t, set(keys) & set(t),
                    [k for k in keys if k not in t])
  used = set()

  def get(key, shape=None):
    return common.take(t, used, key, shape)

  w = get("patch_embed.proj.weight")
  patch = w.shape[-1]
  chans = w.shape[1]
  pos = get("pos_embed")
  grid = int(round(math.sqrt(pos.shape[1] - 1)))
  if grid * grid != pos.shape[1] - 1 or pos.shape[-1] != dim:
    raise common.CheckpointError(
        f"{path}: pos_embed {tuple(pos.shape)} is not (1, 1 + n*n, {dim}) "
        f"of {arch}")
  params = {
      "patch_embed": {"kernel": np.transpose(w, (2, 3, 1, 0)).reshape(
          patch * patch * chans, dim), "bias": get("patch_embed.proj.bias")},
      "pos_embed": pos[0, 1:].reshape(grid, grid, dim),
      "cls_token": get("cls_token", (1, 1, dim)) + pos[:, :1],
      "norm": _ln(get, "norm")}
  hd = dim // heads
  for i in range(depth):
    b = f"blocks.{i}"
    qkv_w = get(f"{b}.attn.qkv.weight", (3 * dim, dim))
    qkv_b = get(f"{b}.attn.qkv.bias", (3 * dim,))
    attn = {}
    for j, name in enumerate(("query", "key", "value")):
      attn[name] = {
          "kernel": qkv_w[j * dim:(j + 1) * dim].T.reshape(dim, heads, hd),
          "bias": qkv_b[j * dim:(j + 1) * dim].reshape(heads, hd)}
    attn["out"] = {"kernel": get(f"{b}.attn.proj.weight").T.reshape(
        heads, hd, dim), "bias": get(f"{b}.attn.proj.bias")}
    params[f"block{i}"] = {
        "LayerNorm_0": _ln(get, f"{b}.norm1"),
        "MultiHeadDotProductAttention_0": attn,
        "LayerNorm_1": _ln(get, f"{b}.norm2"),
        "Mlp_0": {"Dense_0": _dense(get, f"{b}.mlp.fc1"),
                  "Dense_1": _dense(get, f"{b}.mlp.fc2")}}
  fields = dict(name=arch, vit_patch=patch, exact_gelu=True,
                image_size=grid * patch, channels=chans)
  return fields, {"backbone": params}, {}


def _ln(get, prefix):
  return {"scale": get(f"{prefix}.weight"), "bias": get(f"{prefix}.bias")}


def _dense(get, prefix):
  return {"kernel": get(f"{prefix}.weight").T, "bias": get(f"{prefix}.bias")}
