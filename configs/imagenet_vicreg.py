"""BagSSL VICReg on ImageNet, paper Fig. 3b's BagSSL VICReg (patch sizes).

Experiment: ResNet-50 (ImageNet stem) on fixed-scale 32x32 patches
(`:patch=N` for the patch-size sweep) of images resized (shorter side) and
centre-cropped to 224, the patches resized to 224; `:rrc` is the
RandomResizedCrop(0.08, 1) baseline (its patches 100 px, Fig. 3a's, for the
convergence cosine). Recipe and variants (:patch=N, :input=N,
:rrc, :runlocal): bagssl_jax/config/presets.py.
Hyper-parameters (bagssl_jax/methods/vicreg.py presets): VICReg 25/25/1,
projector 8192-8192-8192, LARS base lr 0.2 per 256 images, wd 1e-6, 10
warm-up epochs (facebookresearch/vicreg main_vicreg.py defaults).
Training (the paper's protocol): 2 patches per image a step with the
method's two-view loss, 100 epochs, the same for the :rrc baseline;
`:views=N` trains N patches with EMP-SSL's view-to-mean loss instead.
Eval (Fig. 3b): central, 1 and 16 patches (:rrc: crops), whole test set.
Paper number: Section 4.1 on Fig. 3b: BagSSL (the method not named) 62% top-1
linear probe with 32x32 patches (the evaluation not stated), 67.9% with 16
patches averaged (the patch size not stated) against 73.2% for the VICReg
baseline's central; the published VICReg ResNet-50: Table 4, central 73.2%, 16
crops 74.2% (`--table=table4`). The figure's other bars are not in the text.
Prepare the data once with `tfds build imagenet2012 --file_format=array_record
--manual_dir=...` and point `data.path` (or TFDS_DATA_DIR) at it.

  python -m bagssl_jax.main --config=configs/imagenet_vicreg.py --workdir=gs://...
  ...:patch=64, ...:rrc, ...:runlocal (tiny model and batch; runs under
  tfds.testing.mock_data).
"""
from bagssl_jax.config import presets


def get_config(arg=None):
  return presets.build("imagenet", "vicreg", arg)
