"""BagSSL VICReg on ImageNet-100 (paper Table 3: ImageNet-100).

Experiment: ResNet-50 on 100x100 patches of ImageNet-100 (image_folder; set
data.path), resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc,
:runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1, projector
8192-8192-8192, LARS base lr 0.2, wd 1e-6, 10 warmup epochs:
facebookresearch/vicreg main_vicreg.py defaults.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 400 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 3): central, 1, 16 and 48 patches (:rrc: crops), whole test set.
Paper number: Table 3 (ImageNet-100), row VICReg: BagSSL central 42.1%, 1 / 16
/ 48 patches 46.1 / 76.8 / 76.9%; the :rrc baseline central 77.8%, 1 / 16 / 48
crops 70.7 / 79.1 / 79.4% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/imagenet100_vicreg.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "vicreg", arg)
