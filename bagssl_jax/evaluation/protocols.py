"""Evaluation protocols: names, what each embeds, and how they group in passes.

  central            the whole image through the network
  <k>_patch(es)      mean h of k random fixed-size patches (nested: the first
                     k of any larger k, so 1, 16 and 256 share patches)
  all_patches        mean h of every patch on an `eval.all_patches_stride`
                     grid (the paper's "All")
  <k>_crop(s)        mean h of k RandomResizedCrop(config.rrc_scale) crops
                     resized to `input_size` (the multi-scale baseline; nested)
  local_aggregation  patches on an `eval.local_stride` grid, h averaged within
                     each cell of an `eval.local_grid` x `local_grid` partition
                     of the image (by patch centre), cells concatenated
                     (Table 5)

A *pass* embeds one family (patches: central/random/grid; crops; local) of
protocols that share image limits: the protocols of `eval.subset_protocols`
use the first `eval.subset_max_{train,test}_images` images (costly ones, e.g.
256_patches), those of `eval.protocol_limits` ((name, train, test) triples)
their own, the others `eval.max_{train,test}_images`.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

FULL = ("central", "1_patch", "16_patches", "256_patches", "all_patches",
        "1_crop", "16_crops", "local_aggregation")
CONVERGENCE_NS = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class Protocol:
  name: str
  kind: str  # central | random | grid | crops | local
  k: int = 0  # random patches or crops

  @property
  def family(self):
    return {"central": "patches", "random": "patches", "grid": "patches",
            "crops": "crops", "local": "local"}[self.kind]


def parse(name) -> Protocol:
  """A protocol name -> Protocol; ValueError naming the valid forms."""
  fixed = {"central": "central", "all_patches": "grid",
           "local_aggregation": "local"}
  if name in fixed:
    return Protocol(name, fixed[name])
  m = re.fullmatch(r"(\d+)_(patch|crop)(es|s)?", str(name))
  if not m or int(m.group(1)) < 1:
    raise ValueError(f"config.eval.protocols: unknown protocol '{name}' (use "
                     "central, <k>_patches, all_patches, <k>_crops or "
                     "local_aggregation)")
  return Protocol(name, "random" if m.group(2) == "patch" else "crops",
                  int(m.group(1)))


def limits(name, ev):
  """(max train, max test) images of protocol `name` (0: all)."""
  lim = (ev.max_train_images, ev.max_test_images)
  own = {n: (tr, te) for n, tr, te in ev.get("protocol_limits", ())}
  if name in own:
    sub = own[name]
  elif name in tuple(ev.get("subset_protocols", ())):
    sub = (ev.subset_max_train_images, ev.subset_max_test_images)
  else:
    return lim
  return tuple(min(a, b) if a and b else (a or b) for a, b in zip(lim, sub))


def plan_passes(names, ev):
  """[(family, (max_train, max_test), [names])] in first-appearance order."""
  passes = {}
  for name in names:
    key = (parse(name).family, limits(name, ev))
    passes.setdefault(key, []).append(name)
  return [(fam, lim, ns) for (fam, lim), ns in passes.items()]


def local_cells(positions, patch_size, image_hw, grid):
  """(L, G*G) float matrix averaging the L patches of each of the G x G cells
  (cell of a patch = where its centre falls); empty cells average nothing."""
  h, w = image_hw
  centre = positions + patch_size / 2.
  row = np.minimum((centre[:, 0] * grid // h).astype(int), grid - 1)
  col = np.minimum((centre[:, 1] * grid // w).astype(int), grid - 1)
  onehot = np.zeros((len(positions), grid * grid), np.float32)
  onehot[np.arange(len(positions)), row * grid + col] = 1.
  return onehot / np.maximum(onehot.sum(0, keepdims=True), 1.)


def patches_per_image(name, image_hw, config):
  """How many network inputs protocol `name` averages per image."""
  from bagssl_jax.data import patches as patches_lib  # pylint: disable=g-import-not-at-top
  p, ev = parse(name), config.eval
  if p.kind == "central":
    return 1
  if p.kind in ("random", "crops"):
    return p.k
  stride = ev.all_patches_stride if p.kind == "grid" else ev.local_stride
  return len(patches_lib.grid_positions(image_hw, config.patch_size, stride))
