"""BagSSL BYOL on ImageNet (paper Fig. 3b: ImageNet, patch sizes).

Experiment: ResNet-50 on 32x32 patches (`:patch=N`) of TFDS `imagenet2012`,
resized to 224 px. Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/byol.py presets): EMA target momentum 0.99 (cosine to
1), projector 4096-256, predictor 4096, LARS base lr 0.45, wd 1e-6, 10 warmup
epochs: the 100-epoch presets of google-deepmind/deepmind-research
byol/configs/byol.py.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 100 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Fig. 3b): central, 1 and 16 patches (:rrc: crops), whole test set.
Paper number: the text gives no BagSSL BYOL number on ImageNet (Section 4.1's
62% with 32x32 patches and 67.9% with 16 patches name no method; Fig. 3b's
baseline is VICReg); the published BYOL ResNet-50: Table 4, central 74.3%, 16
crops 75.4% (`--table=table4`).

  python -m bagssl_jax.main --config=configs/imagenet_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "byol", arg)
