"""The one config builder: datasets' recipes, methods' presets, variants.

`build(dataset, method, arg)` is what every `configs/<dataset>_<method>.py`
returns: `defaults.base_config()`, then the dataset's recipe (`DATASETS`),
then the method's preset at that dataset's scale (`Method.presets` in
bagssl_jax/methods/), then the variants named in the comma-separated `arg`
(applied in this order, whatever their order in `arg`):

  patch=N   fixed patch side in pixels of the preprocessed image
  rrc       the multi-scale baseline: RandomResizedCrop(0.08, 1) of the whole
            image at the dataset's crop size (ResNet methods), evaluated on
            the same counts of crops (`<k>_patches` -> `<k>_crops`)
  views=N   N patches per image with EMP-SSL's view-to-mean loss
            (multi_view="mean"; the many-patch variant of BagSSL training)
  input=N   side the patches (or crops) are resized to before the network
  runlocal  a seconds-long smoke run: width-8 network, 64-wide heads, batch
            16, 3 steps, tiny images (runs under tfds.testing.mock_data)

An unknown variant, dataset or method raises ValueError with one line naming
the choices (a typo must not silently train the default). Every
hyper-parameter names the source it was read from; values that are this
repository's choice say so. Learning rates are per 256 images (`optim.py`
scales them by batch_size / 256, as VICReg, SimCLR, BYOL and solo-learn do).

A dataset recipe and a method preset are dicts of config sections to update
("config" holds top-level fields); a method preset may also set "loss" (its
`config.loss.<method>`), "tau" (`target_momentum`) and "runlocal" (overrides
after the smoke-run shrink), and names its "src". A recipe's "rrc" and
"runlocal" are the overrides of those variants.
"""
from __future__ import annotations

import ml_collections

from bagssl_jax import methods
from bagssl_jax.config import defaults

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RUNLOCAL_PROTOCOLS = ("central", "1_patch", "16_patches", "all_patches")


# The paper datasets follow the paper's training protocol: two fixed-scale
# patches per image, each a view of the method's usual two-view loss ("two
# image patches are randomly selected from each image"), upsampled to the
# network's input size (CIFAR 14 -> 32, ImageNet-100 100 -> 224, ImageNet
# 32 -> 224). BagSSL and its multi-scale baseline (:rrc) train for the same
# epochs: the baselines' standard schedules, which the paper does not restate
# (verified here: no), 1000 epochs on CIFAR and 400 on ImageNet-100
# (solo-learn scripts/pretrain/{cifar,imagenet-100}/*.yaml), 100 on ImageNet
# (VICReg's main_vicreg.py default, SimCLR's README command). The table
# protocols run on the whole test set and all train images
# (subset_max_* = 0).
def _paper(scale, crop_size, epochs, data, model, patch_size, eval_,
           runlocal):
  return dict(
      scale=scale, data=data, model=model,
      config=dict(patch_size=patch_size, input_size=crop_size, num_patches=2,
                  multi_view="pairs", crop="patches", batch_size=256,
                  num_epochs=epochs),
      optimizer=dict(momentum=0.9, end_lr_factor=0.001),
      eval=dict(eval_, subset_max_train_images=0, subset_max_test_images=0),
      rrc=dict(config=dict(input_size=crop_size)),
      runlocal=dict(runlocal, eval=dict(runlocal.get("eval", {}),
                                        protocols=_RUNLOCAL_PROTOCOLS)))


# The baselines' own augmentations (colour ops in a random order per image,
# torchvision's ColorJitter; per-view blur and solarization probabilities),
# used by both the patch runs and their :rrc baselines on the paper datasets
# (the paper changes only the crop). BYOL's (Grill et al. 2020, Table 6),
# which VICReg, Barlow Twins and MoCo v3 reuse: blur 1.0 / 0.1, solarize
# 0.0 / 0.2. SimCLR's (Chen et al. 2020, colour strength 1.0): jitter
# .8/.8/.8/.2, blur 0.5, no solarization. CIFAR: solo-learn
# scripts/pretrain/cifar/augmentations/{asymmetric,symmetric}.yaml (no blur
# in the asymmetric one). TCR keeps EMP-SSL's jitter (methods/tcr.py).
_BYOL_AUG = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
                 jitter_prob=0.8, grayscale_prob=0.2, random_order=True,
                 blur_prob=(1.0, 0.1), solarize_prob=(0.0, 0.2))
_SIMCLR_AUG = dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                   jitter_prob=0.8, grayscale_prob=0.2, random_order=True,
                   blur_prob=(0.5,), solarize_prob=(0.0,))
_TCR_AUG = dict(random_order=True)
AUGMENT = {
    "imagenet": dict(default=_BYOL_AUG, simclr=_SIMCLR_AUG,
                     spectral=_SIMCLR_AUG, tcr=_TCR_AUG),
    "cifar": dict(default=dict(_BYOL_AUG, blur_prob=(0.0,)),
                  simclr=_SIMCLR_AUG, spectral=_SIMCLR_AUG, tcr=_TCR_AUG),
}


def _cifar(name, mean, std):
  """CIFAR-10/100: ResNet-34 (CIFAR stem), 14x14 patches resized to 32 px."""
  return _paper(
      "cifar", 32, 1000,
      data=dict(name=name, channels=3, image_size=0, mean=mean, std=std,
                num_workers=8, train_split="train", test_split="test"),
      model=dict(depth="resnet34", cifar_stem=True), patch_size=14,
      # Tables 1-2: central, 1, 16 and 256 patches (crops for :rrc).
      eval_=dict(protocols=("central", "1_patch", "16_patches",
                            "256_patches"),
                 all_patches_stride=2, batch_patches=8192),
      runlocal=dict(config=dict(input_size=16),
                    eval=dict(all_patches_stride=6)))  # 4 x 4 grid


_IMAGENET_RUNLOCAL = dict(config=dict(patch_size=32, input_size=32),
                          data=dict(image_size=64),
                          eval=dict(all_patches_stride=16))  # 3 x 3 grid

DATASETS = {
    # The embedded default: Fashion-MNIST from Debian's idx files, sized for
    # about 15 minutes on a 2-core CPU (pretraining + eval). The optimizer
    # is the same for every method: LARS scales each layer's step by
    # ||w|| / ||g||, so its learning rate does not depend on the loss's
    # scale. Method-specific values are this repository's (docs/tuning.md).
    # ResNet-10 ([1,1,1,1] BasicBlocks) trains twice as fast as ResNet-18
    # here; for the same 15 minutes both reach the same accuracy. A 1x1
    # conv-BN-ReLU to 512 channels before the pool gives a 512-dim h, which
    # the linear probe needs, for ~3% of the step (4 epochs, 16_patches
    # linear: 82.0% with the plain 128-dim h, 84.1% with it).
    "fashion_mnist": dict(
        scale="fashion_mnist",
        data=dict(name="fashion_mnist", channels=1, mean=(0.2860,),
                  std=(0.3530,),
                  read_threads=1),  # more only contend with XLA on 2 cores
        model=dict(depth="resnet10", width=16, cifar_stem=True,
                   expand_width=512, projector_dims=(512, 512, 512),
                   predictor_hidden=512),
        config=dict(patch_size=14, input_size=14, num_patches=2,
                    batch_size=256, num_epochs=8, checkpoint_every_steps=500),
        optimizer=dict(name="lars", base_lr=1.6, weight_decay=1e-4,
                       warmup_epochs=1),
        eval=dict(
            all_patches_stride=7,  # 3x3 = 9 patches (last row included)
            batch_patches=2048,  # fastest on a 2-core CPU
            max_train_images=0,  # probes fit on all 60k train images
            probe_weight_decays=(0.0, 1e-4),  # 6-point lr x wd sweep
            # Training's own eval stays within the 15-minute budget: kNN
            # k=200 and the low-shot probes come with the eval binary.
            knn_extra_k=(), low_shot=()),
        rrc=dict(config=dict(input_size=28)),  # 28-px crops, same schedule
        runlocal={}),
    "cifar10": _cifar("cifar10", mean=(0.4914, 0.4822, 0.4465),
                      std=(0.2470, 0.2435, 0.2616)),
    "cifar100": _cifar("cifar100", mean=(0.5071, 0.4865, 0.4409),
                       std=(0.2673, 0.2564, 0.2762)),
    # ImageNet-100 is not in TFDS: an ImageFolder tree (ROOT/train/<class>/,
    # ROOT/test/<class>/) read by the `image_folder` source; set data.path.
    # Patches are resized to 224 as in EMP-SSL's ImageNet-100 pipeline
    # (dataset/aug4img.py: RandomResizedCrop(224, scale=(0.25, 0.25))).
    "imagenet100": _paper(
        "imagenet", 224, 400,
        data=dict(name="image_folder", path="", channels=3, image_size=224,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, num_workers=16,
                  train_split="train", test_split="test"),
        model=dict(depth="resnet50", cifar_stem=False), patch_size=100,
        # Table 3: central, 1, 16 and 48 patches (crops for :rrc).
        eval_=dict(protocols=("central", "1_patch", "16_patches",
                              "48_patches"),
                   all_patches_stride=62, batch_patches=2048),
        runlocal=_IMAGENET_RUNLOCAL),
    # ImageNet (TFDS `imagenet2012`, ArrayRecord): 32-px patches resized to
    # 224, the paper's ImageNet setting (62% with 32x32 patches); :patch=N
    # for other patch sizes. The all_patches grid is non-overlapping (stride
    # = patch, plus the last row/column): 49 patches of 32 px. The :rrc
    # baseline's patches (its convergence cosine) are 100 px, Fig. 3a's
    # "N random 100x100 patches" of the multi-scale VICReg.
    "imagenet": dict(
        _paper("imagenet", 224, 100,
               data=dict(name="imagenet2012", channels=3, image_size=224,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD, num_workers=16,
                         train_split="train", test_split="validation"),
               model=dict(depth="resnet50", cifar_stem=False), patch_size=32,
               # Fig. 3b: 1 and 16 patches (crops for :rrc), and central.
               eval_=dict(protocols=("central", "1_patch", "16_patches"),
                          batch_patches=2048),
               runlocal=_IMAGENET_RUNLOCAL),
        rrc=dict(config=dict(input_size=224, patch_size=100)),
        grid_stride_is_patch=True),
}

VARIANTS = ("patch=N", "rrc", "input=N", "views=N", "runlocal")
_VALUED = ("patch", "input", "views")


def parse_variants(arg):
  """'rrc,patch=64' -> {'rrc': True, 'patch': 64}; unknown names raise."""
  out = {}
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    name, eq, value = item.partition("=")
    if name not in ("rrc", "runlocal") + _VALUED:
      raise ValueError(f"unknown config variant '{item}' (choose from "
                       f"{', '.join(VARIANTS)})")
    if name in _VALUED:
      if not eq or not value.isdigit() or int(value) <= 0:
        raise ValueError(f"config variant '{item}': use {name}=N, N > 0")
      out[name] = int(value)
    elif eq:
      raise ValueError(f"config variant '{item}' takes no value")
    else:
      out[name] = True
  return out


def apply(config, sections):
  """Updates `config` from a recipe's sections ("config": top level)."""
  for key, value in sections.items():
    if key == "config":
      config.update(value)
    elif key in ("data", "model", "optimizer", "augment", "multicrop", "eval"):
      config[key].update(value)


def _method_preset(method, dataset, scale):
  preset = methods.get(method).presets.get(scale)
  if preset is None:
    have = sorted(d for d, r in DATASETS.items()
                  if r["scale"] in methods.get(method).presets)
    raise ValueError(f"no '{method}' preset for dataset '{dataset}' (method "
                     f"'{method}' has presets for: {', '.join(have)})")
  return preset


def build(dataset, method, arg=None):
  """The config of `method` on `dataset` with the variants in `arg`."""
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset '{dataset}' (choose from "
                     f"{', '.join(DATASETS)})")
  if method not in methods.METHODS:
    raise ValueError(f"unknown method '{method}' (choose from "
                     f"{', '.join(methods.METHODS)})")
  variants = parse_variants(arg)
  d = DATASETS[dataset]
  preset = _method_preset(method, dataset, d["scale"])
  if variants.get("rrc") and methods.get(method).backbone != "resnet":
    raise ValueError(f"config variant 'rrc' is for the ResNet methods; "
                     f"'{method}' trains on multi-crop views")
  config = defaults.base_config()
  apply(config, d)
  if d.get("grid_stride_is_patch"):
    config.eval.all_patches_stride = config.patch_size
  # Method presets: every method's loss keywords at this scale (so that
  # --config.method=<other> gets the other's preset), then the method's own.
  config.method = method
  for name, m in methods.METHODS.items():
    if "loss" in m.presets.get(d["scale"], {}):
      config.loss[name] = ml_collections.ConfigDict(
          dict(m.presets[d["scale"]]["loss"]))
  config.target_momentum = preset.get("tau", config.target_momentum)
  aug = AUGMENT.get(d["scale"], {})
  config.augment.update(aug.get(method, aug.get("default", {})))
  apply(config, preset)
  if "patch" in variants:
    config.patch_size = variants["patch"]
    if d.get("grid_stride_is_patch"):
      config.eval.all_patches_stride = config.patch_size
  if variants.get("rrc"):
    config.update(crop="rrc", rrc_scale=(0.08, 1.0), rrc_ratio=(3 / 4, 4 / 3))
    apply(config, d["rrc"])
    config.patch_size = variants.get("patch", config.patch_size)
    if d.get("grid_stride_is_patch"):
      config.eval.all_patches_stride = config.patch_size
  if "input" in variants:
    config.input_size = variants["input"]
  if "views" in variants:
    config.update(num_patches=variants["views"], multi_view="mean")
  if variants.get("runlocal"):
    runlocal(config, d, preset)
  if config.crop == "rrc":
    config.eval.protocols = crop_protocols(config.eval.protocols)
  if config.crop == "multicrop":  # every crop is a view of the image
    config.num_patches = config.multicrop.num_global + config.multicrop.num_local
  return config


def crop_protocols(names):
  """The baseline's protocols: `<k>_patch(es)` -> `<k>_crop(s)` (the same
  counts of RandomResizedCrop crops), the others unchanged."""
  out = []
  for name in names:
    k, _, kind = str(name).partition("_")
    out.append(f"{k}_{'crop' if k == '1' else 'crops'}"
               if k.isdigit() and kind in ("patch", "patches") else name)
  return tuple(out)


def runlocal(config, dataset_recipe, preset):
  """Shrinks a built config to a seconds-long smoke run."""
  n_proj = len(config.model.projector_dims)
  defaults.runlocal(config)
  config.model.projector_dims = (64,) * n_proj  # keep the head's depth
  config.num_patches = min(config.num_patches, 4)
  config.data.num_workers = 0
  apply(config, dataset_recipe["runlocal"])
  apply(config, preset.get("runlocal", {}))
