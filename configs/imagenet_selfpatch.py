"""SelfPatch on ImageNet: ViT-S/16 as in the paper (Yun et al., CVPR 2022).

Experiment: DINO + SelfPatch's patch-level loss on TFDS `imagenet2012`
(ArrayRecord, --config.data.path=$TFDS_DATA_DIR), 224-px images.
Hyper-parameters (bagssl_jax/methods/dino.py presets): ViT-S/16 (dim 384, 12
blocks, 6 heads), DINO head 2048-2048-256 -> 65536, patch head -> 4096, 2
global crops (0.25-1) at 224 and 10 local crops (0.05-0.25) at 96, AdamW lr
5e-4 per 256 images (batch 1024), wd 0.04, 10 warmup epochs, teacher momentum
0.996 -> 1, teacher temperature 0.04 -> 0.07 over 30 epochs, student 0.1,
centre momentum 0.9, k = 4 of 8 neighbours, patch weight 0.1, 2 class-attention
blocks, 100 epochs (read from facebookresearch/dino and alinlab/SelfPatch
main_selfpatch.py; DINO's wd schedule 0.04 -> 0.4, gradient clipping and the
frozen last layer are not implemented). Eval: BagSSL protocols on 96-px patches.
Paper number: not verified here (see the SelfPatch paper's tables); not run
(no GPU, no ImageNet here).

  python -m bagssl_jax.main --config=configs/imagenet_selfpatch.py --workdir=DIR --config.data.path=$TFDS_DATA_DIR
  ...:runlocal  32-px mock images, a 1-block ViT, seconds (tests).
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "selfpatch", arg)
