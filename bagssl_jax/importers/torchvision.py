"""torchvision ResNet-18/34/50 state dicts (VICReg's and Barlow Twins'
releases, torch ports of SimCLR / BYOL): `conv1`, `bn1`, `layer<i>.<j>.*`,
`fc` ignored; an optional `projector.*`."""
from __future__ import annotations

from bagssl_jax.importers import common
from bagssl_jax.models import resnet

ARCHS = ("resnet18", "resnet34", "resnet50")
MEAN, STD = common.IMAGENET_MEAN, common.IMAGENET_STD
INPUT_SIZE = 224


def resnet_keys(arch, downsample):
  """The one table of names between this codebase's ResNet and torchvision's
  state dict, used by import and export: [(kind, ours, theirs)], kind "conv"
  or "bn", `ours` the module's path in the backbone's params / batch_stats,
  `theirs` its state-dict prefix. `downsample(i, j, theirs)`: whether block
  j of stage i has a projection shortcut."""
  keys = [("conv", ("stem_conv",), "conv1"), ("bn", ("stem_bn",), "bn1")]
  convs = 3 if resnet.BOTTLENECK[arch] else 2
  for i, n_blocks in enumerate(resnet.STAGE_SIZES[arch]):
    for j in range(n_blocks):
      name, theirs = f"stage{i + 1}_block{j + 1}", f"layer{i + 1}.{j}"
      for c in range(convs):
        keys += [("conv", (name, f"Conv_{c}"), f"{theirs}.conv{c + 1}"),
                 ("bn", (name, f"BatchNorm_{c}"), f"{theirs}.bn{c + 1}")]
      if downsample(i, j, theirs):
        keys += [("conv", (name, f"Conv_{convs}"), f"{theirs}.downsample.0"),
                 ("bn", (name, f"BatchNorm_{convs}"),
                  f"{theirs}.downsample.1")]
  return keys


def resnet_params(tensors, arch, path):
  """(params, batch_stats, model fields) of a torchvision ResNet backbone
  (its width, 64 for the published ones, read from the first convolution)."""
  used, missing, params, stats = set(), [], {}, {}
  bottleneck = resnet.BOTTLENECK[arch]
  downsample = lambda i, j, theirs: (
      f"{theirs}.downsample.0.weight" in tensors or (j == 0 and (
          i > 0 or bottleneck)))
  for kind, ours, theirs in resnet_keys(arch, downsample):
    p_into, s_into = params, stats
    for part in ours[:-1]:
      p_into, s_into = p_into.setdefault(part, {}), s_into.setdefault(part,
                                                                      {})
    if kind == "conv":
      w = common.take(tensors, used, f"{theirs}.weight")
      if w is None:
        missing.append(f"{theirs}.weight")
      else:
        p_into[ours[-1]] = {"kernel": common.conv_kernel(w)}
    else:
      p_into[ours[-1]], s_into[ours[-1]] = common.batch_norm(
          tensors, used, theirs, missing)
  common.check_keys(path, tensors, used, missing)
  stem = tensors.get("conv1.weight")
  fields = dict(name="resnet", depth=arch,
                width=stem.shape[0] if stem is not None else 64,
                cifar_stem=stem is not None and stem.shape[-1] == 3,
                stage_widths=(), expand_width=0, torch_padding=True,
                stem_padding=-1)
  return params, stats, fields


def convert(tensors, arch, path):
  """-> (model fields, params, batch_stats)."""
  backbone, proj = common.split_keys(tensors, path)
  params, stats, fields = resnet_params(backbone, arch, path)
  return _with_projector(fields, params, stats, proj, path)


def _with_projector(fields, params, stats, proj, path):
  out_params, out_stats = {"backbone": params}, {"backbone": stats}
  got = common.projector(proj, path)
  if got is None:
    fields.update(projector_dims=(), projector_last_bn=False)
  else:
    dims, last_bn, p, s = got
    fields.update(projector_dims=dims, projector_last_bn=last_bn)
    out_params["projector"], out_stats["projector"] = p, s
  return fields, out_params, out_stats
