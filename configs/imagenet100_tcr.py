"""BagSSL TCR (EMP-SSL) on ImageNet-100 (cf. paper Table 3).

Experiment: ResNet-50 learns 20 random 100x100 patches per 224x224 image,
resized to 224 px (as EMP-SSL's ImageNet-100 pipeline); an image is the mean of
its patch embeddings. Data: an ImageFolder tree, set --config.data.path=ROOT
with ROOT/train/<class>/*.JPEG and ROOT/test/<class>/*.JPEG (CMC's 100 classes,
their val images as test/; data.test_split="test").
Hyper-parameters (bagssl_jax/presets.py): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py (README's ImageNet-100 command), dataset/aug4img.py.
Patches per image, batch 256 and 100 epochs are this repository's choice
(EMP-SSL's 20-patch, view-to-mean recipe), not the paper's verified values.
Paper number: see Table 3 (not verified here).

  python -m bagssl_jax.main --config=configs/imagenet100_tcr.py --workdir=DIR
  :rrc      the multi-scale baseline (RandomResizedCrop(0.08, 1) views at 224
            px, 2 views, 400 epochs).
  :runlocal a seconds-long smoke run; combinable: :rrc,runlocal
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.build("imagenet100", "tcr", arg)
