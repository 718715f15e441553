"""BagSSL Barlow Twins on CIFAR-10 (cf. paper Table 1).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/barlow_twins.py presets): lambda 0.0051, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/barlow.yaml (its loss scale 0.1 is not modelled).
Paper number: see Table 1 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar10_barlow_twins.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "barlow_twins", arg)
