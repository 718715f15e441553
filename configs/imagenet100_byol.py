"""BagSSL BYOL on ImageNet-100 (paper Table 3: ImageNet-100).

Experiment: ResNet-50 on 100x100 patches of ImageNet-100 (image_folder; set
data.path), resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc,
:runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/byol.py presets): EMA target momentum 0.99 (cosine to
1), projector 4096-256, predictor 4096, LARS base lr 0.45, wd 1e-6, 10 warmup
epochs: the 100-epoch presets of google-deepmind/deepmind-research
byol/configs/byol.py.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 400 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 3): central, 1, 16 and 48 patches (:rrc: crops), whole test set.
Paper number: Table 3 (ImageNet-100), its byol row
(BagSSL and the :rrc baseline); not verified here (the paper's text could not
be read), so `python -m bagssl_jax.reproduce` marks it unknown.

  python -m bagssl_jax.main --config=configs/imagenet100_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "byol", arg)
