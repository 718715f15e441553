"""BagSSL SimCLR on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/simclr.py presets): NT-Xent temperature 0.5, projector
512-128, LARS base lr 1.0, wd 1e-6, 10 warmup epochs: the SimCLR authors'
CIFAR-10 command (google-research/simclr README, run.py).
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: Table 1 (CIFAR-10), row SimCLR: BagSSL central 46.2%, 1 / 16 /
256 patches 82.1 / 90.5 / 90.8%; the :rrc baseline central 90.2%, 1 / 16 / 256
crops 86.4 / 91.6 / 91.8% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/cifar10_simclr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "simclr", arg)
