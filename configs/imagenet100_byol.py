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
Paper number: Table 3 (ImageNet-100), row BYOL: BagSSL central 42.9%, 1 / 16 /
48 patches 47.3 / 77.9 / 77.7%; the :rrc baseline central 78.0%, 1 / 16 / 48
crops 71.1 / 79.4 / 80.1% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/imagenet100_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "byol", arg)
