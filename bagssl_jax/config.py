"""Config defaults, checks run before anything is compiled, (de)serialisation.

`base_config` holds every field a run reads; configs/*.py override it.
`validate` raises `ConfigError` with a one-line message naming the field.
"""
from __future__ import annotations

import json
import sys

import ml_collections
from ml_collections import config_dict

from bagssl_jax import losses, models, optim, vit
from bagssl_jax import protocols as protocols_lib


class ConfigError(ValueError):
  """An invalid config value; the message names the field."""


def validate(config, image_shape=None, data_parallel=1, process_count=1):
  """Checks `config` against the methods, models, data and device count."""
  if config.method not in losses.ALL_METHODS:
    raise ConfigError(f"config.method: unknown method '{config.method}' "
                      f"(choose from {', '.join(sorted(losses.ALL_METHODS))})")
  name = config.model.get("name", "resnet")
  if name != "resnet" and name not in vit.VIT_SIZES:
    raise ConfigError(f"config.model.name: unknown '{name}' (choose from "
                      f"resnet, {', '.join(vit.VIT_SIZES)})")
  _validate_vit(config, image_shape)
  if config.model.depth not in models.STAGE_SIZES:
    raise ConfigError(f"config.model.depth: unknown '{config.model.depth}' "
                      f"(choose from {', '.join(models.STAGE_SIZES)})")
  for field in ("batch_size", "patch_size", "num_patches",
                "checkpoint_every_steps", "keep_checkpoints"):
    if not isinstance(config[field], int) or config[field] <= 0:
      raise ConfigError(f"config.{field} must be a positive integer, "
                        f"got {config[field]!r}")
  unknown = set(config.loss.get(config.method) or {}) - losses.loss_keywords(
      config.method)
  if unknown:
    raise ConfigError(f"config.loss.{config.method}: unknown keyword(s) "
                      f"{', '.join(sorted(unknown))} (the loss takes: "
                      f"{', '.join(sorted(losses.loss_keywords(config.method))) or 'none'})")
  if config.get("multi_view", "pairs") not in losses.MULTI_VIEW:
    raise ConfigError(f"config.multi_view: unknown '{config.multi_view}' "
                      f"(choose from {', '.join(losses.MULTI_VIEW)})")
  if config.get("crop", "patches") not in ("patches", "rrc", "multicrop"):
    raise ConfigError(f"config.crop: unknown '{config.crop}' (choose from "
                      "patches, rrc, multicrop)")
  sw = tuple(config.model.get("stage_widths", ()))
  if sw and (len(sw) != len(models.STAGE_SIZES[config.model.depth]) or
             any(not isinstance(w, int) or w <= 0 for w in sw)):
    raise ConfigError(f"config.model.stage_widths must be () or "
                      f"{len(models.STAGE_SIZES[config.model.depth])} positive "
                      f"integers, got {sw!r}")
  ew = config.model.get("expand_width", 0)
  if not isinstance(ew, int) or ew < 0:
    raise ConfigError(f"config.model.expand_width must be a non-negative "
                      f"integer, got {ew!r}")
  if config.method == "byol" and config.model.predictor_hidden <= 0:
    raise ConfigError("config.model.predictor_hidden must be positive for "
                      "method 'byol'")
  if config.num_patches < 2:
    raise ConfigError("config.num_patches must be >= 2 (patches of one image "
                      f"are the positives), got {config.num_patches}")
  if config.total_steps is not None and config.total_steps <= 0:
    raise ConfigError(f"config.total_steps must be positive, "
                      f"got {config.total_steps}")
  if image_shape is not None and config.get("crop", "patches") == "patches":
    h, w = image_shape[:2]
    if config.patch_size > min(h, w):
      raise ConfigError(f"config.patch_size {config.patch_size} is larger than "
                        f"the {h}x{w} images of {config.data.name}")
  if config.batch_size % data_parallel:
    raise ConfigError(f"config.batch_size {config.batch_size} is not divisible "
                      f"by the {data_parallel} data-parallel devices")
  if config.batch_size % process_count:
    raise ConfigError(f"config.batch_size {config.batch_size} is not divisible "
                      f"by the {process_count} processes")
  if config.optimizer.name not in optim.OPTIMIZERS:
    raise ConfigError(f"config.optimizer.name: unknown optimizer "
                      f"'{config.optimizer.name}' (choose from "
                      f"{', '.join(optim.OPTIMIZERS)})")
  if not config.optimizer.get("predictor_lr_mult", 1.0) > 0:
    raise ConfigError("config.optimizer.predictor_lr_mult: must be > 0, not "
                      f"{config.optimizer.predictor_lr_mult!r}")
  if not isinstance(config.optimizer.get("predictor_constant_lr", False), bool):
    raise ConfigError("config.optimizer.predictor_constant_lr: must be True or "
                      f"False, not {config.optimizer.predictor_constant_lr!r}")
  validate_eval(config)
  if config.data.get("bad_images", "stop") not in ("stop", "skip"):
    raise ConfigError(f"config.data.bad_images: unknown "
                      f"'{config.data.bad_images}' (choose from stop, skip)")
  if config.get("dtype", "float32") not in ("float32", "bfloat16"):
    raise ConfigError(f"config.dtype: unknown '{config.dtype}' (choose from "
                      "float32, bfloat16)")
  if config.get("param_sharding", "replicated") not in ("replicated", "fsdp"):
    raise ConfigError(f"config.param_sharding: unknown '{config.param_sharding}'"
                      " (choose from replicated, fsdp)")
  if config.data.channels not in (1, 3):
    raise ConfigError(f"config.data.channels must be 1 or 3, "
                      f"got {config.data.channels}")


def validate_eval(config):
  """Checks config.eval (protocols, probes, figures, transfer data)."""
  ev = config.eval
  if not ev.protocols:
    raise ConfigError("config.eval.protocols is empty")
  for protocol in ev.protocols:
    try:
      protocols_lib.parse(protocol)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  for field in ("all_patches_stride", "local_stride", "local_grid",
                "batch_patches", "knn_k"):
    if not isinstance(ev[field], int) or ev[field] <= 0:
      raise ConfigError(f"config.eval.{field} must be a positive integer, "
                        f"got {ev[field]!r}")
  for k in ev.knn_extra_k:
    if not isinstance(k, int) or k <= 0:
      raise ConfigError(f"config.eval.knn_extra_k: {k!r} is not a positive "
                        "integer")
  for f in ev.low_shot:
    if not 0 < f < 1:
      raise ConfigError(f"config.eval.low_shot: {f!r} is not a fraction in "
                        "(0, 1)")
  for field in ("max_train_images", "max_test_images", "subset_max_train_images",
                "subset_max_test_images", "health_images", "tsne_images",
                "heldout_every_steps"):
    if not isinstance(ev[field], int) or ev[field] < 0:
      raise ConfigError(f"config.eval.{field} must be an integer >= 0, "
                        f"got {ev[field]!r}")
  if ev.figure_images < 2:
    raise ConfigError(f"config.eval.figure_images must be >= 2, "
                      f"got {ev.figure_images!r}")
  if ev.heldout_every_steps and ev.heldout_images <= 0:
    raise ConfigError("config.eval.heldout_images must be positive")


def _validate_vit(config, image_shape):
  """DINO / SelfPatch need a ViT and multi-crop; a ViT needs sides that are
  multiples of its patch (crops, eval patches, whole images)."""
  vit_model = config.model.get("name", "resnet") in vit.VIT_SIZES
  if config.method in ("dino", "selfpatch"):
    if not vit_model:
      raise ConfigError(f"config.model.name must be a ViT "
                        f"({', '.join(vit.VIT_SIZES)}) for method "
                        f"'{config.method}'")
    if config.get("crop", "patches") != "multicrop":
      raise ConfigError(f"config.crop must be 'multicrop' for method "
                        f"'{config.method}'")
  elif vit_model:
    raise ConfigError("config.model.name: ViTs train with method dino or "
                      f"selfpatch, not '{config.method}'")
  if config.get("crop", "patches") == "multicrop" and not vit_model:
    raise ConfigError("config.crop 'multicrop' is for the ViT methods (dino, "
                      "selfpatch)")
  if not vit_model:
    return
  m, mc = config.model, config.multicrop
  if m.representation not in vit.REPRESENTATIONS:
    raise ConfigError(f"config.model.representation: unknown "
                      f"'{m.representation}' (choose from "
                      f"{', '.join(vit.REPRESENTATIONS)})")
  dim, _, heads = vit.vit_size(m)
  if dim % heads:
    raise ConfigError(f"config.model.vit_dim {dim} is not divisible by "
                      f"vit_heads {heads}")
  if mc.num_global < 2 or mc.num_local < 0:
    raise ConfigError(f"config.multicrop: need num_global >= 2 and "
                      f"num_local >= 0, got {mc.num_global}, {mc.num_local}")
  p = m.vit_patch
  sides = {"multicrop.global_size": mc.global_size,
           "multicrop.local_size": mc.local_size, "input_size":
           config.input_size}
  if image_shape is not None:
    sides["the image side"] = min(image_shape[:2])
  for field, side in sides.items():
    if not isinstance(side, int) or side <= 0 or side % p:
      raise ConfigError(f"config.{field} {side} is not a positive multiple "
                        f"of config.model.vit_patch {p}")
  if config.method == "selfpatch":
    k = config.loss.selfpatch.get("num_neighbours", 4)
    if not 1 <= k <= 8:
      raise ConfigError(f"config.loss.selfpatch.num_neighbours must be in "
                        f"1..8, got {k}")


def to_json(config) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """A ConfigDict from `config.json` (lists come back as tuples)."""
  def tuples(x):
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    return x
  return ml_collections.ConfigDict(tuples(json.loads(text)))


def has_variant(arg, name):
  return name in (arg or "").split(",")


def base_config():
  """Every field a run reads, with defaults."""
  c = ml_collections.ConfigDict()
  c.method = "vicreg"
  # Keyword arguments of each method's loss; the run uses loss.<method>, so
  # `--config.method=simclr --config.loss.simclr.temperature=0.5` both work.
  c.loss = ml_collections.ConfigDict(dict(
      vicreg=dict(sim_coeff=25., std_coeff=25., cov_coeff=1.),
      simclr=dict(temperature=0.1),
      spectral=dict(lam=1.0),
      barlow_twins=dict(lambd=0.0051),
      tcr=dict(eps_sq=0.2, inv_coeff=200.),
      byol=dict(scale=2.0),  # 2: BYOL's symmetrised two-view loss
      # DINO / SelfPatch (ViT-S/16 recipe of the DINO and SelfPatch repos).
      dino=dict(student_temp=0.1, teacher_temp=0.04, warmup_teacher_temp=0.04,
                warmup_teacher_temp_epochs=0, center_momentum=0.9),
      selfpatch=dict(student_temp=0.1, teacher_temp=0.04,
                     warmup_teacher_temp=0.04, warmup_teacher_temp_epochs=0,
                     center_momentum=0.9, num_neighbours=4,
                     patch_weight=0.1)))
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
  # BYOL: EMA target network, momentum cosine-scheduled from this to 1.
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

  c.augment = ml_collections.ConfigDict(dict(
      flip=True, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
      jitter_prob=0.8, grayscale_prob=0.2))

  c.model = ml_collections.ConfigDict(dict(
      name="resnet",  # or vit_tiny / vit_small (methods dino, selfpatch)
      depth="resnet18", width=64, cifar_stem=True,
      stage_widths=(),  # channels per stage; () = width * 2**i
      expand_width=0,  # >0: a 1x1 conv-BN-ReLU to this width before the pool
      projector_dims=(2048, 2048, 2048),
      predictor_hidden=4096,  # BYOL predictor: hidden -> projector_dims[-1]
      # ViT: patch side; dim/depth/heads 0 = the named size's (vit.VIT_SIZES).
      vit_patch=16, vit_dim=0, vit_depth=0, vit_heads=0,
      # Eval representation of a ViT: "cls" (the image-level token the DINO
      # head sees), "mean_patch" (mean of the patch tokens) or "cls_blocks"
      # (DINO's linear-eval features); the eval reports all three
      # (patch_probe.py), this one first.
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
      predictor_lr_mult=1.0,  # BYOL: the predictor's lr / the rest's
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
      # Costly protocols use only the first subset_max_* images (0: all).
      subset_protocols=("256_patches", "1_crop", "16_crops",
                        "local_aggregation"),
      subset_max_train_images=4000, subset_max_test_images=2000,
      # Figures (WORKDIR/eval/*.png) from the first figure_images test images;
      # health (std, effective rank of h and z) on health_images test
      # patches; t-SNE map of tsne_images test images (0: none).
      figures=True, figure_images=500, health_images=2000,
      tsne_images=0, tsne_protocol="all_patches",
      # Training logs the loss terms on heldout_images test images every
      # heldout_every_steps steps (0: never).
      heldout_every_steps=200, heldout_images=256,
      # Transfer: evaluate on another dataset (name empty: the run's data).
      # Channels and normalisation stay the model's; image_size 0: the run's.
      data=dict(name="", path="", image_size=0, train_split="",
                test_split=""),
      # optax linear probe: AdamW on standardised features, lr x wd sweep on
      # a held-out 10% of train, then refit on all of train.
      probe_steps=2000, probe_batch_size=8192,
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


def flags_parser(hint):
  """An absl `flags_parser` for app.run: a bad --config file or
  --config.<field> override is one `error:` line (ending with `hint`), exit 2,
  instead of a traceback."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"error: {e}", file=sys.stderr)
    except OVERRIDE_ERRORS as e:
      exit_bad_override(argv, e, hint)
    sys.exit(2)
  return parse


# What ml_collections raises for an unknown field or a value of the wrong type.
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def exit_bad_override(argv, error, hint):
  """One `error:` line naming the --config arguments, then exit 2."""
  bad = [a for a in argv[1:] if a.startswith("--config")]
  print(f"error: cannot apply {' '.join(bad)}: {type(error).__name__}: "
        f"{error} ({hint})", file=sys.stderr)
  sys.exit(2)
