"""BagSSL SimCLR on ImageNet (cf. paper Fig. 3b).

Experiment: ResNet-50 learns 20 random 32x32 patches (`:patch=N` for larger)
per 224x224 image (TFDS `imagenet2012`), resized to 224 px (`:input=N`); an
image is the mean of its patch embeddings (eval: central, 16 random patches,
the non-overlapping grid).
Hyper-parameters (bagssl_jax/presets.py): NT-Xent temperature 0.1, projector
2048-128, LARS base lr 0.3, wd 1e-6, 10 warmup epochs: the SimCLR authors'
ImageNet command (google-research/simclr README, run.py).
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: 62% top-1 linear probe with 32x32 patches (abstract of arXiv
2206.08954, read; the abstract names no method). Per method and patch size: see
Fig. 3b (not verified here).

  python -m bagssl_jax.main --config=configs/imagenet_simclr.py --workdir=DIR
  :patch=N  fixed patch side in pixels (default 32; e.g. patch=64)
  :input=N  side the patches are resized to (default 224)
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 224
            px, 2 views, 100 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("imagenet", "simclr", arg)
