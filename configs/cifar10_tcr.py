"""BagSSL TCR (EMP-SSL) on CIFAR-10 (paper Table 1: CIFAR-10).

Experiment: ResNet-34 on 14x14 patches of TFDS `cifar10`, resized to 32 px.
Recipe and variants (:patch=N, :input=N, :rrc, :runlocal):
bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/tcr.py presets): total coding rate eps^2 0.2,
invariance weight 200, head 4096-4096-1024, LARS lr 0.3 at batch 100 (0.768 per
256), wd 1e-4, no warmup, cosine to 0, ColorJitter(.4, .4, .4, .2):
tsb0601/EMP-SSL main.py, model/model.py, dataset/aug.py. For scale: EMP-SSL's
README reports 93.1% (CIFAR-10) and 72.4% (CIFAR-100) after 30 epochs with 20
patches (ResNet-18) - EMP-SSL's numbers, not BagSSL's.
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 1000 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Table 1): central, 1, 16 and 256 patches (:rrc: crops), whole test set.
Paper number: Table 1 (CIFAR-10), row TCR: BagSSL central 46.0%, 1 / 16 / 256
patches 82.2 / 90.4 / 90.8%; the :rrc baseline central 90.1%, 1 / 16 / 256
crops 86.5 / 91.5 / 91.8% (linear probe; bagssl_jax/reproduce/paper.json,
checked against the paper's text).

  python -m bagssl_jax.main --config=configs/cifar10_tcr.py --workdir=DIR
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("cifar10", "tcr", arg)
