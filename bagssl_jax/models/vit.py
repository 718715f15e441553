"""Vision Transformers for DINO / SelfPatch (flax Linen).

`ViT`: patch embedding (a reshape + Dense, i.e. a stride-p convolution), a
[CLS] token, learned position embeddings for the `image_size` grid
(bicubically resized to other grids: local crops and BagSSL eval patches),
pre-norm transformer blocks and a final LayerNorm; it returns all tokens
(B, 1 + N, D), [CLS] first. `Aggregator` is SelfPatch's aggregation module: a
learned query token refined by class-attention blocks (CaiT) over a set of
tokens. `DINOHead`: MLP -> l2-normalised bottleneck -> weight-normalised
linear layer (norm fixed to 1). `ViTSSLModel` ties them together for the
train step (`student`, `teacher`) and eval (`embed`, `patch_tokens`).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# name -> (dim, depth, heads). "vit_tiny"/"vit_small" as in DeiT/DINO;
# config.model.vit_dim/vit_depth/vit_heads override them (0: the named size).
VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6),
             "vit_base": (768, 12, 12)}
REPRESENTATIONS = ("cls", "mean_patch", "cls_blocks")
EVAL_BLOCKS = 4  # "cls_blocks": [CLS] of the last 4 blocks (DINO's linear eval)
_init = nn.initializers.truncated_normal(0.02)
_LN = dict(epsilon=1e-6)


def vit_size(model_config):
  dim, depth, heads = VIT_SIZES[model_config.name]
  return (model_config.get("vit_dim") or dim,
          model_config.get("vit_depth") or depth,
          model_config.get("vit_heads") or heads)


# SelfPatch's neighbours on the token grid (the teacher's patch targets).
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0),
            (1, 1)]


def neighbour_indices(gh, gw):
  """(N, 8) row-major token indices of each token's 8 neighbours on a gh x gw
  grid and (N, 8) validity; out-of-grid slots point at the token itself and
  are invalid."""
  idx = np.zeros((gh * gw, 8), np.int32)
  valid = np.zeros((gh * gw, 8), bool)
  for i in range(gh):
    for j in range(gw):
      for s, (di, dj) in enumerate(_OFFSETS):
        y, x = i + di, j + dj
        ok = 0 <= y < gh and 0 <= x < gw
        idx[i * gw + j, s] = y * gw + x if ok else i * gw + j
        valid[i * gw + j, s] = ok
  return idx, valid


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top_k_neighbours(tokens, neighbours, valid, k):
  """tokens (B, N, D) -> the k valid neighbours most cosine-similar to each
  token (B, N, k, D), most similar first, and their validity (B, N, k)
  (False only where a token has fewer than k neighbours)."""
  nb = tokens[:, neighbours]  # (B, N, 8, D)
  sim = jnp.einsum("bnd,bnmd->bnm", _normalize(tokens), _normalize(nb))
  sim = jnp.where(valid, sim, -jnp.inf)
  _, top = jax.lax.top_k(sim, k)  # (B, N, k)
  picked = jnp.take_along_axis(nb, top[..., None], axis=2)
  picked_valid = jnp.take_along_axis(
      jnp.broadcast_to(jnp.asarray(valid), sim.shape), top, axis=2)
  return picked, picked_valid


class Mlp(nn.Module):
  """Linear-GELU-Linear; `exact_gelu`: the erf GELU of torch / timm (imported
  weights) instead of the tanh approximation."""
  hidden: int
  dtype: Any = jnp.float32
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, kernel_init=_init)(x),
                approximate=not self.exact_gelu)
    return nn.Dense(d, dtype=self.dtype, kernel_init=_init)(x)


class Block(nn.Module):
  """Pre-norm self-attention + MLP block."""
  heads: int
  mlp_ratio: float = 4.
  dtype: Any = jnp.float32
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x):
    y = nn.LayerNorm(**_LN, dtype=self.dtype)(x)
    x = x + nn.MultiHeadDotProductAttention(
        self.heads, dtype=self.dtype, kernel_init=_init,
        force_fp32_for_softmax=True)(y)
    y = nn.LayerNorm(**_LN, dtype=self.dtype)(x)
    return x + Mlp(int(x.shape[-1] * self.mlp_ratio), self.dtype,
                   self.exact_gelu)(y)


class ViT(nn.Module):
  """(B, H, W, C) images, H and W multiples of `patch` -> (B, 1 + N, D)."""
  patch: int = 4
  dim: int = 192
  depth: int = 12
  heads: int = 3
  mlp_ratio: float = 4.
  image_size: int = 28  # the grid the position embeddings are learned for
  dtype: Any = jnp.float32
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x, n_last=0):
    """n_last > 0: the normalised tokens of the last n_last blocks instead."""
    b, h, w, c = x.shape
    p = self.patch
    if h % p or w % p:
      raise ValueError(f"ViT: image {h}x{w} is not a multiple of patch {p}")
    gh, gw = h // p, w // p
    x = x.astype(self.dtype).reshape(b, gh, p, gw, p, c)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, gh * gw, p * p * c)
    x = nn.Dense(self.dim, dtype=self.dtype, kernel_init=_init,
                 name="patch_embed")(x)
    g = self.image_size // p
    pos = self.param("pos_embed", _init, (g, g, self.dim))
    if (gh, gw) != (g, g):
      pos = jax.image.resize(pos, (gh, gw, self.dim), "bicubic")
    cls = self.param("cls_token", _init, (1, 1, self.dim))
    x = x + pos.reshape(1, gh * gw, self.dim).astype(self.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.dim)).astype(
        x.dtype), x], axis=1)
    outs = []
    for i in range(self.depth):
      x = Block(self.heads, self.mlp_ratio, self.dtype, self.exact_gelu,
                name=f"block{i}")(x)
      outs.append(x)
    norm = nn.LayerNorm(**_LN, name="norm")
    if n_last:
      return [norm(o).astype(jnp.float32) for o in outs[-n_last:]]
    return norm(x).astype(jnp.float32)


class ClassAttentionBlock(nn.Module):
  """CaiT's class-attention block: the query token attends to [query,
  tokens] (`mask` (B, 1 + M) marks valid keys), then an MLP on the query."""
  heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, q, tokens, mask=None):
    u = nn.LayerNorm(**_LN, dtype=self.dtype)(
        jnp.concatenate([q, tokens], axis=1))
    attn_mask = None if mask is None else mask[:, None, None, :]
    q = q + nn.MultiHeadDotProductAttention(
        self.heads, dtype=self.dtype, kernel_init=_init,
        force_fp32_for_softmax=True)(
            u[:, :1], u, mask=attn_mask)
    y = nn.LayerNorm(**_LN, dtype=self.dtype)(q)
    return q + Mlp(4 * q.shape[-1], self.dtype)(y)


class Aggregator(nn.Module):
  """SelfPatch's aggregation module: tokens (B, M, D) -> (B, D), a learned
  query refined by `depth` class-attention blocks; `mask` (B, M) drops keys."""
  heads: int
  depth: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, mask=None):
    b, _, d = tokens.shape
    q = jnp.broadcast_to(self.param("query", _init, (1, 1, d)), (b, 1, d))
    if mask is not None:
      mask = jnp.concatenate([jnp.ones((b, 1), bool), mask], axis=1)
    for i in range(self.depth):
      q = ClassAttentionBlock(self.heads, self.dtype, name=f"block{i}")(
          q, tokens, mask)
    return nn.LayerNorm(**_LN, name="norm")(q[:, 0]).astype(jnp.float32)


class DINOHead(nn.Module):
  """Linear-GELU x (len(hidden)) -> bottleneck -> l2 norm -> weight-normalised
  linear to out_dim (DINO's head with norm_last_layer=True)."""
  hidden: int = 2048
  bottleneck: int = 256
  out_dim: int = 65536
  layers: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    for _ in range(self.layers - 1):
      x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, kernel_init=_init)(x))
    x = nn.Dense(self.bottleneck, dtype=self.dtype, kernel_init=_init)(x)
    x = x.astype(jnp.float32)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    v = self.param("last_layer", _init, (self.bottleneck, self.out_dim))
    w = v / jnp.linalg.norm(v, axis=0, keepdims=True)
    return x @ w  # f32 under bf16: the logits are divided by a 0.04 temperature


class ViTSSLModel(nn.Module):
  """ViT + DINO head (+ SelfPatch's aggregator and patch head).

  Image-level token: the [CLS] token (DINO), or the aggregator's summary of
  all tokens (SelfPatch, as in its reference code). `representation` picks
  what `embed` returns for eval: "cls" (that image-level token),
  "mean_patch" (the mean of the patch tokens), "cls_blocks" (DINO's linear
  eval features: the [CLS] tokens of the last 4 blocks and the mean patch
  token, concatenated) or "all" (the three concatenated, so one eval pass
  serves them all).
  """
  patch: int = 4
  dim: int = 192
  depth: int = 12
  heads: int = 3
  image_size: int = 28
  head_hidden: int = 2048
  head_bottleneck: int = 256
  out_dim: int = 65536
  selfpatch: bool = False
  patch_out_dim: int = 4096
  agg_depth: int = 2
  representation: str = "cls"
  dtype: Any = jnp.float32
  exact_gelu: bool = False

  def setup(self):
    self.backbone = ViT(self.patch, self.dim, self.depth, self.heads,
                        image_size=self.image_size, dtype=self.dtype,
                        exact_gelu=self.exact_gelu)
    self.head = DINOHead(self.head_hidden, self.head_bottleneck, self.out_dim,
                         dtype=self.dtype)
    if self.selfpatch:
      self.aggregator = Aggregator(self.heads, self.agg_depth, self.dtype)
      self.patch_head = DINOHead(self.head_hidden, self.head_bottleneck,
                                 self.patch_out_dim, dtype=self.dtype)

  def __call__(self, x, train: bool = True):
    return self.backbone(x)

  def image_token(self, tokens):
    return self.aggregator(tokens) if self.selfpatch else tokens[:, 0]

  def student(self, crops):
    """crops: tuple of (n_i, s_i, s_i, C) groups (one resolution each).
    -> (image logits per group, patch logits (n_0, N, P) of group 0 or None)."""
    logits, patch_logits = [], None
    for i, x in enumerate(crops):
      tokens = self.backbone(x)
      logits.append(self.head(self.image_token(tokens)))
      if i == 0 and self.selfpatch:
        patch_logits = self.patch_head(tokens[:, 1:])
    return logits, patch_logits

  def teacher(self, x, neighbours, valid, k):
    """Global crops x -> (image logits, SelfPatch patch logits or None).

    Each patch's target aggregates its top-k neighbours by cosine similarity
    (`neighbours`, `valid`: neighbour_indices of the token grid)."""
    tokens = self.backbone(x)
    logits = self.head(self.image_token(tokens))
    if not self.selfpatch:
      return logits, None
    patches = tokens[:, 1:]
    picked, picked_valid = top_k_neighbours(patches, neighbours, valid, k)
    b, n, kk, d = picked.shape
    agg = self.aggregator(picked.reshape(b * n, kk, d),
                          picked_valid.reshape(b * n, kk))
    return logits, self.patch_head(agg.reshape(b, n, d))

  def init_all(self, x, train: bool = True):
    """Touches every submodule (use as `init(..., method="init_all")`)."""
    tokens = self.backbone(x)
    out = self.head(self.image_token(tokens))
    if self.selfpatch:
      self.patch_head(tokens[:, 1:])
    return out

  def embed(self, x):
    """The eval representation of images x (see `representation`)."""
    blocks = self.backbone(x, n_last=min(EVAL_BLOCKS, self.depth))
    tokens = blocks[-1]
    reps = {"cls": self.image_token(tokens),
            "mean_patch": tokens[:, 1:].mean(axis=1)}
    reps["cls_blocks"] = jnp.concatenate(
        [t[:, 0] for t in blocks] + [reps["mean_patch"]], -1)
    if self.representation == "all":
      return jnp.concatenate([reps[r] for r in REPRESENTATIONS], -1)
    return reps[self.representation]

  def patch_tokens(self, x):
    """(B, N, D) patch tokens (the patch-level probe)."""
    return self.backbone(x)[:, 1:]
