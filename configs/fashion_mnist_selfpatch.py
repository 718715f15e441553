"""SelfPatch (DINO + patch-level loss) on Fashion-MNIST: the embedded default.

A ViT (4 blocks, width 64, 4 heads, 4x4 patches: 7x7 tokens + [CLS]) trained
with DINO's multi-crop (2 global crops (0.4-1) at 28 px, 4 local (0.05-0.4) at
12 px) and SelfPatch's patch term (top-4 of the 8 neighbours, aggregated by 2
class-attention blocks, weight 0.1); AdamW. Recipe: bagssl_jax/presets.py
(vit_ssl). Measured accuracies: README (DINO / SelfPatch section).

  python -m bagssl_jax.main --config=configs/fashion_mnist_selfpatch.py --workdir=/tmp/fm_sp
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax import presets


def get_config(arg=None):
  return presets.vit_ssl("fashion_mnist", "selfpatch", arg)
