"""BagSSL SimCLR on Fashion-MNIST: the embedded default with method=simclr.

Same data, network, patches and LARS schedule as fashion_mnist_vicreg.py
(bagssl_jax/config/presets.py: DATASETS['fashion_mnist'];
bagssl_jax/methods/simclr.py presets); NT-Xent with temperature 0.2 over the 2 patches of each image.
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_simclr.py --workdir=/tmp/fm_simclr
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "simclr", arg)
