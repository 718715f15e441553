"""BagSSL Barlow Twins on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/barlow_twins.py presets): lambda 0.0051, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/barlow.yaml (its loss scale 0.1 is not modelled).
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: not verified: Table 1 (CIFAR-10) has no barlow twins row (the
paper's methods are SimCLR, TCR, VICReg and BYOL).

  python -m bagssl_jax.main --config=configs/cifar10_barlow_twins.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "barlow_twins", arg)
