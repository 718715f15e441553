"""BagSSL VICReg on Fashion-MNIST: the embedded default (CPU, no download).

ResNet (CIFAR stem, width 16), projector 512-512-512, 2 random 14x14 patches
of each 28x28 image fed at native size, LARS; the recipe lives in
bagssl_jax/config/presets.py (DATASETS['fashion_mnist']), shared with fashion_mnist_{simclr,
byol,tcr}.py. `--config.method=<name>` switches the method on the same recipe.

  python -m bagssl_jax.main --config=configs/fashion_mnist_vicreg.py --workdir=/tmp/fm
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "vicreg", arg)
