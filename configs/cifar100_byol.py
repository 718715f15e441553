"""BagSSL BYOL on CIFAR-100 (paper Table 2: CIFAR-100).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar100`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters: those of configs/cifar10_byol.py (same method preset).
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 2): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: Table 2 (CIFAR-100), row BYOL: BagSSL central 37.4%, 1 / 16 / 256
patches 60.9 / 68.9 / 69.2%; the :rrc baseline central 68.8%, 1 / 16 / 256
crops 62.3 / 69.7 / 69.9% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/cifar100_byol.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar100", "byol", arg)
