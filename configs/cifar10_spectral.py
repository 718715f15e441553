"""BagSSL spectral contrastive on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/spectral.py presets): loss of HaoChen et al. 2021 with lam
0.5 (their mu=1 loss is twice ours), head 2048-1000, SGD base lr 0.06 (their
0.03 on the doubled loss), momentum 0.9, wd 5e-4, 10 warmup epochs, cosine to
0: jhaochenz96/spectral_contrastive_learning
configs/spectral_resnet_mlp1000_norelu_cifar10_lr003_mu1.yaml,
models/spectral.py. Their norm clipping at sqrt(mu) is not modelled.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: not verified: Table 1 (CIFAR-10) has no spectral row (the paper's
methods are SimCLR, TCR, VICReg and BYOL).

  python -m bagssl_jax.main --config=configs/cifar10_spectral.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "spectral", arg)
