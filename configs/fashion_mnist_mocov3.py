"""BagSSL MoCo v3 on Fashion-MNIST: the embedded default with method=mocov3.

Same data, network, patches, optimizer and eval protocols as
fashion_mnist_vicreg.py (bagssl_jax/config/presets.py:
DATASETS['fashion_mnist']) with MoCo v3's own (bagssl_jax/methods/mocov3.py
presets): a predictor and an EMA momentum encoder (momentum 0.97 -> 1,
cosine), projector 1024-256 ending in BatchNorm, predictor 256-1024-256,
symmetric InfoNCE with temperature 0.2 over the global batch; 2 patches x
256 images for 3 epochs (702 steps) and probes fit on 20,000 train images
(lr sweep at weight decay 0, 1,000 steps),
sized for 15 minutes on a CPU half as fast as the one of the other presets.
The ImageNet hyper-parameters of the paper's official code are in the same
presets (facebookresearch/moco-v3: LARS lr 0.45 per 256, wd 1e-6, momentum
0.99, projector 4096-256 with its last BatchNorm, predictor 4096).
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_mocov3.py --workdir=DIR
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "mocov3", arg)
