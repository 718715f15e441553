"""BagSSL SimCLR on CIFAR-10 (cf. paper Table 1).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/simclr.py presets): NT-Xent temperature 0.5, projector
512-128, LARS base lr 1.0, wd 1e-6, 10 warmup epochs: the SimCLR authors'
CIFAR-10 command (google-research/simclr README, run.py).
Paper number: see Table 1 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar10_simclr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "simclr", arg)
