"""A trained model held in memory, and the error of checkpoints that cannot
be read: shared by `checkpoints` (this codebase's runs) and `importers`
(checkpoints trained elsewhere), neither of which imports the other's
internals.

  m.embed_patches(patches_uint8)          # (h, z)
  m.embed_images(images_uint8, "16_patches")
  m.export("resnet18.safetensors", layout="torchvision")
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from bagssl_jax.data import augment


class CheckpointError(ValueError):
  """A workdir or checkpoint that cannot be read; one-line message."""


@dataclasses.dataclass
class LoadedModel:
  """A trained model for notebooks: config, params, batch_stats, step."""
  config: Any
  params: Any
  batch_stats: Any
  step: int
  model: Any
  _embedders: dict = dataclasses.field(default_factory=dict, repr=False)

  @property
  def variables(self):
    return {"params": self.params, "batch_stats": self.batch_stats}

  def embed_patches(self, patches):
    """uint8 patches (n, p, p, C) -> (h, z) with eval-mode BatchNorm."""
    x = augment.normalize(augment.to_float(np.asarray(patches),
                                           self.config.input_size),
                          self.config.data.mean, self.config.data.std)
    return _apply_eval(self.model, self.variables, x)

  def embed_images(self, images, protocol="16_patches"):
    """uint8 images (n, H, W, C) (any C; converted to the model's channels
    and, with data.image_size, resized + centre-cropped) -> (n, d) features
    of `protocol` (any eval protocol). Patch positions are hashed from
    (eval.seed, index in `images`): the same inputs give the same output."""
    from bagssl_jax.evaluation import embedding  # pylint: disable=g-import-not-at-top
    return embedding.embed_images(self.model, self.config, self.variables,
                                  images, protocol, self._embedders)

  def export(self, path, layout, with_projector=False):
    """Writes the backbone (and `projector.*`) in PyTorch's `layout`
    (torchvision | solo-learn | timm) to `path` (.safetensors, or .pth with
    torch) plus `path`.json; see `bagssl_jax.importers.export`."""
    from bagssl_jax.importers import export  # pylint: disable=g-import-not-at-top
    return export.export_model(self, path, layout, with_projector)


@jax.jit(static_argnums=0)
def _apply_eval(model, variables, x):
  return model.apply(variables, x, train=False)
