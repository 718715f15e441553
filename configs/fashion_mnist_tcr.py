"""BagSSL TCR (EMP-SSL) on Fashion-MNIST: the embedded default with method=tcr.

Same data, network and 512 patches a step as fashion_mnist_vicreg.py
(bagssl_jax/config/presets.py: DATASETS['fashion_mnist'];
bagssl_jax/methods/tcr.py presets), as 16 patches of 32 images for 1
epoch (LARS base lr 3.2, half an epoch of warm-up); total coding rate
(eps_sq 0.2) and view-to-mean invariance (200), as EMP-SSL.
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_tcr.py --workdir=/tmp/fm_tcr
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "tcr", arg)
