"""BagSSL SimCLR on ImageNet-100 (cf. paper Table 3).

Experiment: ResNet-50 on 100x100 patches of ImageNet-100 (image_folder; set
data.path), resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc,
:runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/simclr.py presets): NT-Xent temperature 0.1, projector
2048-128, LARS base lr 0.3, wd 1e-6, 10 warmup epochs: the SimCLR authors'
ImageNet command (google-research/simclr README, run.py).
Paper number: see Table 3 (not verified here).

  python -m bagssl_jax.main --config=configs/imagenet100_simclr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "simclr", arg)
