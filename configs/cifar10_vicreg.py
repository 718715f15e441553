"""BagSSL VICReg on CIFAR-10 (cf. paper Table 1).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/vicreg.yaml.
Paper number: 91.2% linear probe, 256 patches (Table 1), as quoted for the
paper; not verified here against the paper text.

  python -m bagssl_jax.main --config=configs/cifar10_vicreg.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "vicreg", arg)
