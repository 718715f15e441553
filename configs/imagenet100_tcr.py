"""BagSSL TCR (EMP-SSL) on ImageNet-100 (paper Table 3: ImageNet-100).

Experiment: ResNet-50 on 100x100 patches of ImageNet-100 (image_folder; set
data.path), resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc,
:runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/tcr.py presets): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py (README's ImageNet-100 command), dataset/aug4img.py.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 400 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 3): central, 1, 16 and 48 patches (:rrc: crops), whole test set.
Paper number: Table 3 (ImageNet-100), row TCR: BagSSL central 41.3%, 1 / 16 /
48 patches 45.6 / 76.1 / 76.3%; the :rrc baseline central 77.3%, 1 / 16 / 48
crops 70.1 / 78.5 / 78.8% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/imagenet100_tcr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet100", "tcr", arg)
