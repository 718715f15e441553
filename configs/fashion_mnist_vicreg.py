"""BagSSL VICReg on Fashion-MNIST: the embedded default (CPU, no download).

ResNet-18 (CIFAR stem, width 16), projector 512-512-512, 2 random 14x14
patches of each 28x28 image fed at native size.

  python -m bagssl_jax.main --config=configs/fashion_mnist_vicreg.py --workdir=/tmp/fm
  ...:runlocal  shrinks the run to seconds for smoke tests.
"""
from bagssl_jax import config as common


def get_config(arg=None):
  config = common.base_config()
  config.data.name = "fashion_mnist"
  config.data.channels = 1
  config.data.mean = (0.2860,)
  config.data.std = (0.3530,)
  config.patch_size = 14
  config.input_size = 14
  config.num_patches = 2
  config.model.update(depth="resnet18", width=16, cifar_stem=True,
                      projector_dims=(512, 512, 512), predictor_hidden=512)
  config.batch_size = 256
  config.num_epochs = 8
  config.optimizer.update(name="lars", base_lr=1.6, weight_decay=1e-4,
                          warmup_epochs=1)
  config.checkpoint_every_steps = 500
  config.data.read_threads = 1  # more threads only contend with XLA on 2 cores
  config.eval.all_patches_stride = 4  # 5x5 = 25 patches (last row included)
  config.eval.batch_patches = 2048  # fastest on a 2-core CPU
  # Probes are fit on 30k of the 60k train images: the eval then takes about
  # 3 minutes on 2 cores, leaving the rest of 15 minutes to pretraining.
  config.eval.max_train_images = 30000
  if common.has_variant(arg, "runlocal"):
    common.runlocal(config)
  return config
