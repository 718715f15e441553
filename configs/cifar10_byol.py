"""BagSSL BYOL on CIFAR-10 (cf. paper Table 1).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/byol.py presets): EMA target momentum 0.99 (cosine to
1), projector 4096-256, predictor 4096, LARS base lr 1.0, wd 1e-5, 10 warmup
epochs: solo-learn scripts/pretrain/cifar/byol.yaml.
Paper number: see Table 1 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar10_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "byol", arg)
