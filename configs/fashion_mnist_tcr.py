"""BagSSL TCR (EMP-SSL) on Fashion-MNIST: the embedded default with method=tcr.

Same data, network, patches and LARS schedule as fashion_mnist_vicreg.py
(bagssl_jax/presets.py: fashion_mnist); Total coding rate (eps_sq 0.2) and view-to-mean invariance (200).
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_tcr.py --workdir=/tmp/fm_tcr
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.fashion_mnist("tcr", arg)
