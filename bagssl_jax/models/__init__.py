"""Models: ResNet + projector (+ predictor) and ViT + DINO heads.

`make_model(config)` builds the network `config` trains: `config.model.name`
picks the backbone ("resnet" or a ViT size of `vit.VIT_SIZES`), the method
(`bagssl_jax.methods`) whether it has a predictor or SelfPatch's patch head.
"""
from __future__ import annotations

import jax.numpy as jnp

from bagssl_jax.models import resnet, vit

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def is_vit(config) -> bool:
  return config.model.get("name", "resnet") in vit.VIT_SIZES


def make_model(config):
  from bagssl_jax import methods  # pylint: disable=g-import-not-at-top
  method = methods.get(config.method)
  m = config.model
  if is_vit(config):
    dim, depth, heads = vit.vit_size(m)
    return vit.ViTSSLModel(
        patch=m.vit_patch, dim=dim, depth=depth, heads=heads,
        image_size=config.multicrop.global_size, head_hidden=m.head_hidden,
        head_bottleneck=m.head_bottleneck, out_dim=m.out_dim,
        selfpatch=method.patch_head, patch_out_dim=m.patch_out_dim,
        agg_depth=m.agg_depth, representation=m.representation,
        dtype=DTYPES[config.dtype], exact_gelu=m.get("exact_gelu", False))
  return resnet.BagSSLModel(
      depth=m.depth, width=m.width, cifar_stem=m.cifar_stem,
      projector_dims=tuple(m.projector_dims),
      predictor_hidden=m.predictor_hidden if method.predictor else 0,
      dtype=DTYPES[config.dtype],
      stage_widths=tuple(m.get("stage_widths", ())),
      expand_width=m.get("expand_width", 0),
      projector_last_bn=m.get("projector_last_bn", False),
      torch_padding=m.get("torch_padding", False),
      stem_padding=m.get("stem_padding", -1))


def input_shape(config):
  """The (1, side, side, channels) input `init` traces the model with."""
  size = config.multicrop.global_size if is_vit(config) else config.input_size
  return (1, size, size, config.data.channels)
