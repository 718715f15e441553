"""DINO alone on Fashion-MNIST: fashion_mnist_selfpatch.py without the
patch-level term (same ViT, multi-crop, schedule), the comparison baseline.

  python -m bagssl_jax.main --config=configs/fashion_mnist_dino.py --workdir=/tmp/fm_dino
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "dino", arg)
