"""Checkpoints trained elsewhere, as `loaded.LoadedModel`s.

  m = load_external("resnet50.pth", "torchvision", "resnet50")
  h, z = m.embed_patches(patches_uint8)   # z = h without a projector

One module per layout (`LAYOUTS`): torchvision, solo-learn, timm. Each
converts a flat {key: array} (files.py) to this codebase's parameter tree and
names the model fields it needs (torch-style padding, solo-learn's stem,
exact GELU); `config.data.mean` / `std` are the normalisation the weights
were trained with (overridable).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bagssl_jax import config as config_lib
from bagssl_jax import methods, models
from bagssl_jax.loaded import CheckpointError, LoadedModel
from bagssl_jax.data import augment
from bagssl_jax.importers import files, solo_learn, timm, torchvision

LAYOUTS = {"torchvision": torchvision, "solo-learn": solo_learn,
           "timm": timm}


def parse_spec(spec):
  """'LAYOUT:ARCH:PATH' -> (layout, arch, path); CheckpointError if bad."""
  parts = str(spec).split(":", 2)
  if len(parts) != 3 or not all(parts):
    raise CheckpointError(f"--external={spec}: use LAYOUT:ARCH:PATH, e.g. "
                          "torchvision:resnet50:resnet50.pth")
  check_layout(parts[0], parts[1])
  return tuple(parts)


def check_layout(layout, arch):
  if layout not in LAYOUTS:
    raise CheckpointError(f"unknown checkpoint layout '{layout}' (use "
                          f"{', '.join(LAYOUTS)})")
  if arch not in LAYOUTS[layout].ARCHS:
    raise CheckpointError(f"layout {layout} has no architecture '{arch}' "
                          f"(use {', '.join(LAYOUTS[layout].ARCHS)})")


def external_config(layout, arch, fields, config=None, mean=None, std=None):
  """`config` (default: base_config sized to the model's input) with the
  imported model's fields and normalisation."""
  mod = LAYOUTS[layout]
  if config is None:
    config = config_lib.base_config()
    size = fields.get("image_size", mod.INPUT_SIZE)
    config.input_size = config.patch_size = size
  config = ml_collections.ConfigDict(config.to_dict())
  fields = dict(fields)
  config.data.channels = fields.pop("channels", 3)
  config.data.mean = tuple(mean or mod.MEAN)
  config.data.std = tuple(std or mod.STD)
  if layout == "timm":
    config.method = "dino"
    config.multicrop.global_size = fields.pop("image_size")
  else:
    method = methods.METHODS.get(config.method)
    if (method is None or method.predictor or method.target
        or method.backbone != "resnet"):
      config.method = "vicreg"  # an imported backbone has neither
    fields["predictor_hidden"] = 0
  config.model.update(fields)
  return config


class ImportedModel(LoadedModel):
  """A LoadedModel of imported weights; a ViT's `embed_patches` gives its
  pooled representation h (z = h)."""

  def embed_patches(self, patches):
    if not models.is_vit(self.config):
      return super().embed_patches(patches)
    x = augment.normalize(augment.to_float(np.asarray(patches),
                                           self.config.input_size),
                          self.config.data.mean, self.config.data.std)
    h = _embed(self.model, self.variables, x)
    return h, h


@jax.jit(static_argnums=0)
def _embed(model, variables, x):
  return model.apply(variables, x, method=model.embed)


def load_external(path, layout, arch, *, config=None, mean=None,
                  std=None) -> LoadedModel:
  """Reads a checkpoint trained elsewhere; same object as `checkpoints.load`.

  `layout`: torchvision | solo-learn | timm; `arch`: resnet18/34/50 or
  vit_small/vit_base. `config`: the eval config to run it under (its data
  and eval fields are kept; model and normalisation are the checkpoint's);
  `mean` / `std` override the normalisation of uint8 inputs."""
  path = str(path)
  check_layout(layout, arch)
  tensors = files.read_tensors(path)
  fields, params, stats = LAYOUTS[layout].convert(tensors, arch, path)
  config = external_config(layout, arch, fields, config, mean, std)
  model = models.make_model(config)
  params = jax.tree.map(jnp.asarray, params)
  stats = jax.tree.map(jnp.asarray, stats)
  _check_tree(model, config, params, stats, path)
  return ImportedModel(config, params, stats, 0, model)


def _check_tree(model, config, params, stats, path):
  """The converted tree has the model's structure and shapes."""
  shape = models.input_shape(config)
  method = "embed" if models.is_vit(config) else None
  want = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros(shape), **(
          {"method": method} if method else {"train": False})))
  got = {"params": params, "batch_stats": stats}
  for col in want:
    w = jax.tree_util.tree_flatten_with_path(want[col])[0]
    g = dict(jax.tree_util.tree_flatten_with_path(got.get(col, {}))[0])
    for keypath, leaf in w:
      have = g.get(keypath)
      if have is None or tuple(have.shape) != tuple(leaf.shape):
        name = jax.tree_util.keystr(keypath)
        raise CheckpointError(
            f"{path}: {col}{name} is "
            f"{'missing' if have is None else tuple(have.shape)}, the model "
            f"needs {tuple(leaf.shape)}")
