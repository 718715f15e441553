"""BagSSL VICReg on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1, projector
2048-2048-2048, LARS base lr 0.3, wd 1e-4, 10 warmup epochs: solo-learn
scripts/pretrain/cifar/vicreg.yaml.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: Table 1 (CIFAR-10), row VICReg: BagSSL central 47.1%, 1 / 16 /
256 patches 83.1 / 90.9 / 91.2%; the :rrc baseline central 90.7%, 1 / 16 / 256
crops 87.3 / 91.9 / 92.0% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/cifar10_vicreg.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "vicreg", arg)
