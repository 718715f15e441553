"""solo-learn Lightning checkpoints: `state_dict` with `backbone.*` (a
torchvision ResNet whose CIFAR variant has a 3x3, stride-1, padding-2 first
convolution and no max-pool) and `projector.*`; momentum copies, predictor
and classifier ignored."""
from __future__ import annotations

from bagssl_jax.importers import common, torchvision

ARCHS = torchvision.ARCHS
# solo-learn's CIFAR normalisation.
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
INPUT_SIZE = 32


def convert(tensors, arch, path):
  backbone, proj = common.split_keys(tensors, path)
  params, stats, fields = torchvision.resnet_params(backbone, arch, path)
  if fields["cifar_stem"]:
    fields["stem_padding"] = 2
  return torchvision._with_projector(fields, params, stats, proj, path)  # pylint: disable=protected-access
