"""Paper Table 4 on any imported checkpoint: aggregated crops on ImageNet.

Protocols: `central` (resize to 256, centre crop 224: the standard ImageNet
view) and the mean h of 1, 16 and 48 RandomResizedCrop(0.08, 1) crops of
the 256-px image, each resized to 224 (nested: 1 of 16 of 48). Linear probe
(minibatch SGD, features streamed from the host) and kNN (k=20) on all of
ImageNet. Data: TFDS `imagenet2012` as ArrayRecord
(--config.data.path=TFDS_DATA_DIR); variants :input=N, :runlocal (64-px
images, a 56-px centre, crops resized to 32: seconds under mock data).

  python -m bagssl_jax.eval --external=torchvision:resnet50:resnet50.pth \\
      --config=configs/eval/table4.py --workdir=OUT
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  config = presets.build("imagenet", "vicreg", arg)
  variants = presets.parse_variants(arg)
  small = variants.get("runlocal")  # 64-px images, 56-px centre, 32-px input
  config.input_size = variants.get("input", 32 if small else 224)
  config.data.image_size = 64 if small else 256
  config.patch_size = 56 if small else 224  # the central view's side
  config.update(rrc_scale=(0.08, 1.0), rrc_ratio=(3 / 4, 4 / 3))
  config.eval.update(dict(
      preset="table4", central_crop=config.patch_size,
      protocols=("central", "1_crop", "16_crops", "48_crops"),
      subset_protocols=(), low_shot=(), knn_extra_k=(), tsne_images=0))
  return config
