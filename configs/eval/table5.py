"""Paper Table 5 on any imported checkpoint: local aggregation on CIFAR-10.

Protocols: `central` (the whole 32x32 image), `all_patches` (the mean h of
the 25 patches of 16x16 on a stride-4 grid) and `local_aggregation` (those
25 patches averaged within each cell of a 2x2 partition of the image, by
patch centre, cells concatenated); each patch is resized to 32 px, the
CIFAR models' input. Linear probe and kNN (k=20) on all CIFAR-10 images.
Data: TFDS `cifar10` (or --config.data.name=image_folder
--config.data.path=ROOT); variants :patch=N, :input=N, :runlocal.

  python -m bagssl_jax.eval --external=solo-learn:resnet18:byol.ckpt \\
      --config=configs/eval/table5.py --workdir=OUT
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  config = presets.build("cifar10", "vicreg", arg)
  variants = presets.parse_variants(arg)
  config.patch_size = variants.get("patch", 16)
  config.input_size = variants.get("input", 32)
  config.eval.update(dict(
      preset="table5",
      protocols=("central", "all_patches", "local_aggregation"),
      all_patches_stride=4, local_stride=4, local_grid=2,
      subset_protocols=(), low_shot=(), knn_extra_k=(), tsne_images=0))
  return config
