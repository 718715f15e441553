"""SelfPatch (DINO + patch-level loss) on Fashion-MNIST: the embedded default.

A ViT (4 blocks, width 64, 4 heads, 7x7 patches: 4x4 tokens + [CLS]) trained
with DINO's multi-crop (2 global crops (0.4-1) at 28 px, 4 local (0.05-0.4) at
14 px) and SelfPatch's patch term (top-4 of the 8 neighbours, aggregated by 2
class-attention blocks, weight 0.1); AdamW, 5 epochs. Recipe:
bagssl_jax/methods/dino.py (presets). Measured (README, DINO / SelfPatch section):
best protocol 82.9% linear in 776 s on the 2-core CPU.

  python -m bagssl_jax.main --config=configs/fashion_mnist_selfpatch.py --workdir=/tmp/fm_sp
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("fashion_mnist", "selfpatch", arg)
