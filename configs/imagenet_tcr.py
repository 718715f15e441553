"""BagSSL TCR (EMP-SSL) on ImageNet (cf. paper Fig. 3b).

Experiment: ResNet-50 learns 20 random 32x32 patches (`:patch=N` for larger)
per 224x224 image (TFDS `imagenet2012`), resized to 224 px (`:input=N`); an
image is the mean of its patch embeddings (eval: central, 16 random patches,
the non-overlapping grid).
Hyper-parameters (bagssl_jax/presets.py): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py (README's ImageNet-100 command), dataset/aug4img.py.
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: 62% top-1 linear probe with 32x32 patches (abstract of arXiv
2206.08954, read; the abstract names no method). Per method and patch size: see
Fig. 3b (not verified here).

  python -m bagssl_jax.main --config=configs/imagenet_tcr.py --workdir=DIR
  :patch=N  fixed patch side in pixels (default 32; e.g. patch=64)
  :input=N  side the patches are resized to (default 224)
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 224
            px, 2 views, 100 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("imagenet", "tcr", arg)
