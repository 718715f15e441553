"""BagSSL BYOL on Fashion-MNIST: the embedded default with method=byol.

Same data, network and eval as fashion_mnist_vicreg.py
(bagssl_jax/config/presets.py: DATASETS['fashion_mnist'];
bagssl_jax/methods/byol.py presets) with BYOL's own: 4 patches x 128
images a step (all view pairs; the same 512 patches and 1,872 steps as the
others' 2 x 256 for 8 epochs), LARS base lr 2.0 (1.0 at 128 images) with the
predictor's lr x10 (`optimizer.predictor_lr_mult`), projector 1024-256 and
predictor 256-1024-256 (BYOL's head shapes at the cost of the 512^3
projector), EMA target with momentum 0.97 -> 1 (cosine), and the loss
summed over the 12 ordered view pairs as solo-learn's multi-crop BYOL does
(`loss.byol.scale` 12: under LARS the loss scale sets the step of the
BatchNorm and bias parameters).
Measured 16-patch linear accuracy: see the README's method table.

  python -m bagssl_jax.main --config=configs/fashion_mnist_byol.py --workdir=/tmp/fm_byol
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "byol", arg)
