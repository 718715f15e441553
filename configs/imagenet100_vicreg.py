"""BagSSL VICReg on ImageNet-100 (cf. paper Table 3).

Experiment: ResNet-50 on 100x100 patches of ImageNet-100 (image_folder; set
data.path), resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc,
:runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1, projector
8192-8192-8192, LARS base lr 0.2, wd 1e-6, 10 warmup epochs:
facebookresearch/vicreg main_vicreg.py defaults.
Paper number: see Table 3 (not verified here; 76.9% on ImageNet-100 is the
figure quoted for the paper, without naming the row).

  python -m bagssl_jax.main --config=configs/imagenet100_vicreg.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "vicreg", arg)
