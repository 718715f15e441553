"""BagSSL TCR (EMP-SSL) on CIFAR-100 (cf. paper Table 2).

Experiment: ResNet-34 (CIFAR stem) learns 20 random 14x14 patches per 32x32
image (TFDS `cifar100`), resized to 32 px; an image is the mean of its patch
embeddings (eval: central, 1/16/256 random patches, stride-2 grid).
Hyper-parameters (bagssl_jax/presets.py): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py, model/model.py, dataset/aug.py. For scale: EMP-SSL's
README reports 93.1% (CIFAR-10) and 72.4% (CIFAR-100) after 30 epochs with 20
patches (ResNet-18) - EMP-SSL's numbers, not BagSSL's.
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: see Table 2 (not verified here).

  python -m bagssl_jax.main --config=configs/cifar100_tcr.py --workdir=DIR
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 32
            px, 2 views, 1000 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("cifar100", "tcr", arg)
