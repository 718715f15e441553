"""BagSSL BYOL on ImageNet (cf. paper Fig. 3b).

Experiment: ResNet-50 on 32x32 patches (`:patch=N`) of TFDS `imagenet2012`,
resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/byol.py presets): EMA target momentum 0.99 (cosine to
1), projector 4096-256, predictor 4096, LARS base lr 0.45, wd 1e-6, 10 warmup
epochs: the 100-epoch presets of google-deepmind/deepmind-research
byol/configs/byol.py.
Paper number: 62% top-1 linear probe with 32x32 patches (abstract of arXiv
2206.08954, read; the abstract names no method). Per method and patch size: see
Fig. 3b (not verified here).

  python -m bagssl_jax.main --config=configs/imagenet_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "byol", arg)
