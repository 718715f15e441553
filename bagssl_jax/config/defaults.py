"""Config defaults: `base_config` holds every field a run reads.

configs/*.py build on it through `config.presets.build`; `runlocal` shrinks
any config to a seconds-long smoke run.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from bagssl_jax import methods


def base_config():
  """Every field a run reads, with defaults."""
  c = ml_collections.ConfigDict()
  c.method = "vicreg"
  # Keyword arguments of each method's loss (the registry's defaults); the
  # run uses loss.<method>, so `--config.method=simclr
  # --config.loss.simclr.temperature=0.5` both work.
  c.loss = ml_collections.ConfigDict({
      name: dict(method.loss_defaults)
      for name, method in methods.METHODS.items()})
  c.seed = 0
  c.batch_size = 256  # global, in images
  c.num_epochs = 100
  c.total_steps = config_dict.placeholder(int)  # overrides num_epochs when set
  c.patch_size = 14  # fixed-scale patch side, in source-image pixels
  c.input_size = 14  # patches are resized to this before the network
  c.num_patches = 2  # patches per image (positives of each other)
  # How a two-view loss sees N > 2 views: "pairs" averages it over all view
  # pairs; "mean" pairs each view with the views' mean (EMP-SSL). TCR always
  # uses its view-to-mean invariance.
  c.multi_view = "pairs"
  # "patches": fixed-scale patch_size patches (BagSSL); "rrc": the multi-scale
  # baseline, RandomResizedCrop(rrc_scale, rrc_ratio) of the whole image,
  # resized to input_size (patch_size is then unused).
  c.crop = "patches"
  c.rrc_scale = (0.08, 1.0)
  c.rrc_ratio = (3 / 4, 4 / 3)
  # Methods with an EMA target (BYOL, MoCo v3, DINO): momentum
  # cosine-scheduled from this to 1.
  c.target_momentum = 0.99
  # Compute dtype of the network ("bfloat16" on GPU/TPU); parameters, BatchNorm
  # statistics, the loss and the optimizer stay float32.
  c.dtype = "float32"

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"
  c.data.path = ""  # idx folder / TFDS data_dir; empty: the defaults
  c.data.train_split = "train"
  c.data.test_split = "test"
  c.data.channels = 1
  c.data.image_size = 0  # resize+centre-crop to this (0: keep; fixed-size data)
  c.data.mean = (0.5,)
  c.data.std = (0.25,)
  # An image file that cannot be decoded: "stop" the run naming the file, or
  # "skip" it (the next decodable image takes its place; counted in the log).
  c.data.bad_images = "stop"
  c.data.num_workers = 0  # grain worker processes (0: in-process threads)
  c.data.read_threads = 4
  c.data.prefetch = 4
  c.data.device_prefetch = 2  # global batches placed on the devices ahead

  # On-device augmentation (data/augment.py, data/photometric.py). Per-view
  # probabilities: view j of an image takes prob[j % len(prob)]; blur and
  # solarization are off unless a preset sets them (BYOL / VICReg: blur
  # (1.0, 0.1), solarize (0.0, 0.2)); random_order: the jitter ops in a random
  # order per image, as torchvision's ColorJitter.
  c.augment = ml_collections.ConfigDict(dict(
      flip=True, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
      jitter_prob=0.8, grayscale_prob=0.2, random_order=False,
      blur_prob=(0.0,), blur_sigma=(0.1, 2.0), blur_kernel_frac=0.1,
      solarize_prob=(0.0,)))

  c.model = ml_collections.ConfigDict(dict(
      name="resnet",  # or vit_tiny / vit_small (methods dino, selfpatch)
      depth="resnet18", width=64, cifar_stem=True,
      stage_widths=(),  # channels per stage; () = width * 2**i
      expand_width=0,  # >0: a 1x1 conv-BN-ReLU to this width before the pool
      # PyTorch's conventions, for weights that go to or come from PyTorch
      # (`bagssl_jax.export`): every k x k convolution pads k // 2 each side
      # (not 'SAME'), the first one `stem_padding` (>= 0; solo-learn's CIFAR
      # stem: 2), and a ViT's GELU is exact (erf), as timm's.
      torch_padding=False, stem_padding=-1, exact_gelu=False,
      projector_dims=(2048, 2048, 2048),
      projector_last_bn=False,  # end the projector with a BatchNorm
      predictor_hidden=4096,  # predictor (BYOL, MoCo v3): hidden -> out dim
      # ViT: patch side; dim/depth/heads 0 = the named size's (vit.VIT_SIZES).
      vit_patch=16, vit_dim=0, vit_depth=0, vit_heads=0,
      # Eval representation of a ViT: "cls" (the image-level token the DINO
      # head sees), "mean_patch" (mean of the patch tokens) or "cls_blocks"
      # (DINO's linear-eval features); the eval reports all three
      # (evaluation/vit.py), this one first.
      representation="cls",
      # DINO heads (MLP hidden, bottleneck, out_dim), SelfPatch's patch head
      # out_dim and aggregation depth (class-attention blocks).
      head_hidden=2048, head_bottleneck=256, out_dim=65536,
      patch_out_dim=4096, agg_depth=2))
  # DINO multi-crop: global and local RandomResizedCrop scales and sides.
  c.multicrop = ml_collections.ConfigDict(dict(
      num_global=2, num_local=10, global_size=224, local_size=96,
      global_scale=(0.25, 1.0), local_scale=(0.05, 0.25)))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.3, weight_decay=1e-4, momentum=0.9,
      warmup_epochs=10.0, end_lr_factor=0.001,
      predictor_lr_mult=1.0,  # the predictor's lr / the rest's
      predictor_constant_lr=False))  # no decay for it (SimSiam --fix-pred-lr)

  # Device mesh: both axes split the batch; -1 = the rest of the devices.
  # param_sharding "fsdp" splits every parameter / optimizer-state leaf of at
  # least fsdp_min_size elements over the `fsdp` axis (e.g. --config.mesh.fsdp=8
  # --config.param_sharding=fsdp); "replicated" keeps a copy on every device.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))
  c.param_sharding = "replicated"
  c.fsdp_min_size = 2**16

  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.log_every_seconds = 5.0
  c.run_eval = True
  # Resume a workdir whose config.json differs in fields that change the
  # model or data (bagssl_jax/workdir.py lists the fields that may differ).
  c.allow_config_change = False

  c.eval = ml_collections.ConfigDict(dict(
      protocols=("central", "1_patch", "16_patches", "all_patches"),
      all_patches_stride=2, batch_patches=4096, seed=0,
      max_train_images=0,  # 0: all train images feed the probes
      max_test_images=0,
      knn_k=20, knn_temperature=0.07,
      knn_extra_k=(200,),  # also reported, as "knn_<k>"
      # Linear probes on a class-stratified fraction of the train labels
      # ("linear_1%", "linear_10%").
      low_shot=(0.01, 0.1),
      # local_aggregation (Table 5): patches on a local_stride grid, h
      # averaged in each cell of a local_grid x local_grid partition.
      local_stride=2, local_grid=2,
      # central: the centred central_crop square of the (data.image_size)
      # image, 0 the whole image (ImageNet: image_size 256, central_crop 224).
      central_crop=0,
      # An embedding pass logs images done, images/s and ETA this often.
      progress_every_seconds=60.0,
      # Costly protocols use only the first subset_max_* images (0: all).
      subset_protocols=("256_patches", "1_crop", "16_crops",
                        "local_aggregation"),
      subset_max_train_images=4000, subset_max_test_images=2000,
      # Per-protocol limits, before the subset's: ((name, train, test), ...).
      protocol_limits=(),
      # Figures (WORKDIR/eval/*.png) from the first figure_images test images;
      # health (std, effective rank of h and z) on health_images test
      # patches; t-SNE map of tsne_images test images (0: none).
      figures=True, figure_images=500, health_images=2000,
      tsne_images=0, tsne_protocol="all_patches",
      # Training logs the loss terms on heldout_images test images every
      # heldout_every_steps steps (0: never).
      heldout_every_steps=200, heldout_images=256,
      # Online kNN monitor (evaluation/monitor.py): every knn_every_steps
      # steps (0: never), kNN accuracy of knn_monitor_test_images test images
      # against knn_monitor_train_images train images under
      # knn_monitor_protocol ("": 16_patches, or 16_crops for crop="rrc").
      knn_every_steps=0, knn_monitor_train_images=2000,
      knn_monitor_test_images=1000, knn_monitor_protocol="",
      # Transfer: evaluate on another dataset (name empty: the run's data).
      # Channels and normalisation stay the model's; image_size 0: the run's.
      data=dict(name="", path="", image_size=0, train_split="",
                test_split=""),
      # optax linear probe: AdamW on standardised features, lr x wd sweep on
      # a held-out 10% of train, then refit on all of train.
      probe_steps=2000, probe_batch_size=8192,
      # Train features above this many MiB stay in host memory: the probe
      # streams minibatches, kNN streams train chunks (ImageNet scale).
      probe_device_mb=2048,
      probe_learning_rates=(1e-2, 3e-2, 1e-1),
      probe_weight_decays=(0.0, 1e-5, 1e-4)))
  return c


def runlocal(c):
  """Shrinks a config to a seconds-long smoke run."""
  c.batch_size = 16
  c.total_steps = 3
  c.checkpoint_every_steps = 2
  c.log_every_seconds = 0.0
  c.eval.max_train_images = 64
  c.eval.max_test_images = 32
  c.eval.batch_patches = 256
  c.eval.probe_steps = 100
  c.eval.subset_max_train_images = 32
  c.eval.subset_max_test_images = 16
  c.eval.figure_images = 8
  c.eval.health_images = 32
  c.eval.low_shot = (0.25,)
  c.eval.knn_extra_k = (30,)
  c.eval.heldout_every_steps = 0
  c.eval.heldout_images = 16
  c.model.width = 8
  c.model.stage_widths = ()
  c.model.expand_width = 0
  c.model.projector_dims = (64, 64, 64)
  c.model.predictor_hidden = 64
  if c.model.get("name", "resnet") != "resnet":  # a 1-block, 32-wide ViT
    c.model.update(vit_dim=32, vit_depth=1, vit_heads=2, head_hidden=64,
                   head_bottleneck=32, out_dim=64, patch_out_dim=64,
                   agg_depth=1)
    c.multicrop.num_local = 2
