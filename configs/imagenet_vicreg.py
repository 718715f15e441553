"""BagSSL VICReg on ImageNet (TFDS `imagenet2012`, ArrayRecord).

ResNet-50 (ImageNet stem), projector 8192-8192-8192, images resized (shorter
side) and centre-cropped to 224, fixed-scale 96x96 patches fed at 96 px.
Prepare the data once with `tfds build imagenet2012 --file_format=array_record
--manual_dir=...` and point `data.path` (or TFDS_DATA_DIR) at it.

  python -m bagssl_jax.main --config=configs/imagenet_vicreg.py --workdir=gs://...
  ...:runlocal  tiny model and batch (runs under tfds.testing.mock_data).
"""
from bagssl_jax import config as common


def get_config(arg=None):
  config = common.base_config()
  config.data.name = "imagenet2012"
  config.data.channels = 3
  config.data.image_size = 224
  config.data.test_split = "validation"
  config.data.mean = (0.485, 0.456, 0.406)
  config.data.std = (0.229, 0.224, 0.225)
  config.data.num_workers = 16
  config.patch_size = 96
  config.input_size = 96
  config.num_patches = 2
  config.model.update(depth="resnet50", width=64, cifar_stem=False,
                      projector_dims=(8192, 8192, 8192))
  config.batch_size = 2048
  config.num_epochs = 100
  config.optimizer.update(name="lars", base_lr=0.2, weight_decay=1e-6,
                          warmup_epochs=10)
  config.augment.update(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
  config.checkpoint_every_steps = 2000
  config.eval.all_patches_stride = 32
  config.eval.batch_patches = 4096
  if common.has_variant(arg, "runlocal"):
    common.runlocal(config)
    config.data.image_size = 64
    config.data.num_workers = 0
    config.patch_size = 32
    config.input_size = 32
    config.model.update(depth="resnet50", width=8,
                        projector_dims=(64, 64, 64))
    config.eval.all_patches_stride = 16
  return config
