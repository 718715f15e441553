"""BagSSL BYOL on CIFAR-100 (cf. paper Table 2).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar100`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters: those of configs/cifar10_byol.py (same method preset).
Paper number: see Table 2 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar100_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar100", "byol", arg)
