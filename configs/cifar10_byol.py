"""BagSSL BYOL on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/byol.py presets): EMA target momentum 0.99 (cosine to
1), projector 4096-256, predictor 4096, LARS base lr 1.0, wd 1e-5, 10 warmup
epochs: solo-learn scripts/pretrain/cifar/byol.yaml.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: Table 1 (CIFAR-10), row BYOL: BagSSL central 47.3%, 1 / 16 / 256
patches 83.6 / 91.3 / 91.5%; the :rrc baseline central 90.9%, 1 / 16 / 256
crops 87.8 / 92.3 / 92.4% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/cifar10_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "byol", arg)
