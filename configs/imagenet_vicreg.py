"""BagSSL VICReg on ImageNet (TFDS `imagenet2012`, ArrayRecord).

Experiment: ResNet-50 (ImageNet stem) on fixed-scale 32x32 patches
(`:patch=N` for the patch-size sweep) of images resized (shorter side) and
centre-cropped to 224, the patches resized to 224; `:rrc` is the
RandomResizedCrop(0.08, 1) baseline. Recipe and variants (:patch=N, :input=N,
:rrc, :runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1,
projector 8192-8192-8192, LARS base lr 0.2 per 256 images, wd 1e-6, 10
warm-up epochs (facebookresearch/vicreg main_vicreg.py defaults).
Paper number: 62% top-1 linear probe with 32x32 patches (abstract of arXiv
2206.08954, read; the abstract names no method). Per method and patch size: see
Fig. 3b (not verified here).
Prepare the data once with `tfds build imagenet2012 --file_format=array_record
--manual_dir=...` and point `data.path` (or TFDS_DATA_DIR) at it.

  python -m bagssl_jax.main --config=configs/imagenet_vicreg.py --workdir=gs://...
  ...:patch=64, ...:rrc, ...:runlocal (tiny model and batch; runs under
  tfds.testing.mock_data).
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "vicreg", arg)
