"""BagSSL BYOL on Fashion-MNIST: the embedded default with method=byol.

Same data, network, patches and schedule as fashion_mnist_vicreg.py
(bagssl_jax/presets.py: fashion_mnist) with BYOL's own: LARS base lr 1.0,
projector 1024-256 and predictor 256-1024-256 (BYOL's head shapes at the
cost of the 512^3 projector), EMA target with momentum 0.97 -> 1 (cosine).
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_byol.py --workdir=/tmp/fm_byol
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.fashion_mnist("byol", arg)
