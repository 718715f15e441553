"""BagSSL Barlow Twins on CIFAR-10 (cf. paper Table 1).

Experiment: ResNet-34 (CIFAR stem) learns 20 random 14x14 patches per 32x32
image (TFDS `cifar10`), resized to 32 px; an image is the mean of its patch
embeddings (eval: central, 1/16/256 random patches, stride-2 grid).
Hyper-parameters (bagssl_jax/presets.py): lambda 0.0051, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/barlow.yaml (its loss scale 0.1 is not modelled).
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: see Table 1 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar10_barlow_twins.py --workdir=DIR
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 32
            px, 2 views, 1000 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("cifar10", "barlow_twins", arg)
