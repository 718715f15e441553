"""BagSSL VICReg on CIFAR-100 (cf. paper Table 2).

Experiment: ResNet-34 (CIFAR stem) learns 20 random 14x14 patches per 32x32
image (TFDS `cifar100`), resized to 32 px; an image is the mean of its patch
embeddings (eval: central, 1/16/256 random patches, stride-2 grid).
Hyper-parameters (bagssl_jax/presets.py): VICReg 25/25/1, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/vicreg.yaml.
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: see Table 2 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar100_vicreg.py --workdir=DIR
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 32
            px, 2 views, 1000 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("cifar100", "vicreg", arg)
