"""BagSSL TCR (EMP-SSL) on ImageNet (paper Fig. 3b: ImageNet, patch sizes).

Experiment: ResNet-50 on 32x32 patches (`:patch=N`) of TFDS `imagenet2012`,
resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/tcr.py presets): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py (README's ImageNet-100 command), dataset/aug4img.py.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 100 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Fig. 3b): central, 1 and 16 patches (:rrc: crops), whole test set.
Paper number: the text gives no BagSSL TCR number on ImageNet (Section 4.1's
62% with 32x32 patches and 67.9% with 16 patches name no method; Fig. 3b's
baseline is VICReg); the TCR ResNet-50 of Table 4 (no public file known):
central 69.0%, 16 crops 70.7% (`--table=table4`).

  python -m bagssl_jax.main --config=configs/imagenet_tcr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "tcr", arg)
