"""BagSSL BYOL on Fashion-MNIST: the embedded default with method=byol.

Same data, network, patches and LARS schedule as fashion_mnist_vicreg.py
(bagssl_jax/presets.py: fashion_mnist); Predictor 512-512, EMA target with momentum 0.99 -> 1 (cosine).
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_byol.py --workdir=/tmp/fm_byol
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.fashion_mnist("byol", arg)
