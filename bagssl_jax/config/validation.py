"""Config checks run before anything is compiled.

`validate` raises `ConfigError` with a one-line message naming the field. The
method's own checks and loss keywords come from the registry
(`bagssl_jax.methods`).
"""
from __future__ import annotations

from bagssl_jax import methods, optim
from bagssl_jax.evaluation import protocols as protocols_lib
from bagssl_jax.methods import base as methods_base
from bagssl_jax.models import resnet, vit


class ConfigError(ValueError):
  """An invalid config value; the message names the field."""


def validate(config, image_shape=None, data_parallel=1, process_count=1):
  """Checks `config` against the methods, models, data and device count."""
  if config.method not in methods.METHODS:
    raise ConfigError(f"config.method: unknown method '{config.method}' "
                      f"(choose from {', '.join(sorted(methods.METHODS))})")
  method = methods.get(config.method)
  name = config.model.get("name", "resnet")
  if name != "resnet" and name not in vit.VIT_SIZES:
    raise ConfigError(f"config.model.name: unknown '{name}' (choose from "
                      f"resnet, {', '.join(vit.VIT_SIZES)})")
  _validate_vit(config, method, image_shape)
  if config.model.depth not in resnet.STAGE_SIZES:
    raise ConfigError(f"config.model.depth: unknown '{config.model.depth}' "
                      f"(choose from {', '.join(resnet.STAGE_SIZES)})")
  for field in ("batch_size", "patch_size", "num_patches",
                "checkpoint_every_steps", "keep_checkpoints"):
    if not isinstance(config[field], int) or config[field] <= 0:
      raise ConfigError(f"config.{field} must be a positive integer, "
                        f"got {config[field]!r}")
  unknown = set(config.loss.get(config.method) or {}) - method.keywords
  if unknown:
    raise ConfigError(f"config.loss.{config.method}: unknown keyword(s) "
                      f"{', '.join(sorted(unknown))} (the loss takes: "
                      f"{', '.join(sorted(method.keywords)) or 'none'})")
  if config.get("multi_view", "pairs") not in methods_base.MULTI_VIEW:
    raise ConfigError(f"config.multi_view: unknown '{config.multi_view}' "
                      f"(choose from {', '.join(methods_base.MULTI_VIEW)})")
  if config.get("crop", "patches") not in ("patches", "rrc", "multicrop"):
    raise ConfigError(f"config.crop: unknown '{config.crop}' (choose from "
                      "patches, rrc, multicrop)")
  sw = tuple(config.model.get("stage_widths", ()))
  if sw and (len(sw) != len(resnet.STAGE_SIZES[config.model.depth]) or
             any(not isinstance(w, int) or w <= 0 for w in sw)):
    raise ConfigError(f"config.model.stage_widths must be () or "
                      f"{len(resnet.STAGE_SIZES[config.model.depth])} positive "
                      f"integers, got {sw!r}")
  ew = config.model.get("expand_width", 0)
  if not isinstance(ew, int) or ew < 0:
    raise ConfigError(f"config.model.expand_width must be a non-negative "
                      f"integer, got {ew!r}")
  if method.check is not None:
    try:
      method.check(config)
    except ValueError as e:
      raise ConfigError(str(e)) from None
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
  _validate_augment(config.augment)
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


def _validate_augment(aug):
  for field in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    value = aug.get(field, 0.0)
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not values or any(not isinstance(v, (int, float)) or not 0 <= v <= 1
                         for v in values):
      raise ConfigError(f"config.augment.{field} must be a probability (or "
                        f"one per view) in [0, 1], got {value!r}")
  lo, hi = tuple(aug.get("blur_sigma", (0.1, 2.0)))
  if not 0 < lo <= hi:
    raise ConfigError(f"config.augment.blur_sigma must be (lo, hi) with 0 < lo"
                      f" <= hi, got {tuple(aug.blur_sigma)!r}")


def _validate_monitor(ev):
  for field in ("knn_every_steps", "knn_monitor_train_images",
                "knn_monitor_test_images"):
    if not isinstance(ev.get(field, 0), int) or ev.get(field, 0) < 0:
      raise ConfigError(f"config.eval.{field} must be a non-negative integer, "
                        f"got {ev[field]!r}")
  name = ev.get("knn_monitor_protocol", "")
  if name:
    try:
      protocols_lib.parse(name)
    except ValueError as e:
      raise ConfigError(str(e).replace("config.eval.protocols",
                                       "config.eval.knn_monitor_protocol"))
  if ev.get("knn_every_steps", 0) and not (
      ev.get("knn_monitor_train_images", 1) and
      ev.get("knn_monitor_test_images", 1)):
    raise ConfigError("config.eval.knn_monitor_train_images and "
                      "knn_monitor_test_images must be > 0 with "
                      "knn_every_steps")


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
  _validate_monitor(ev)
  for field in ("max_train_images", "max_test_images", "subset_max_train_images",
                "subset_max_test_images", "health_images", "tsne_images",
                "heldout_every_steps"):
    if not isinstance(ev[field], int) or ev[field] < 0:
      raise ConfigError(f"config.eval.{field} must be an integer >= 0, "
                        f"got {ev[field]!r}")
  for entry in ev.get("protocol_limits", ()):
    ok = isinstance(entry, (tuple, list)) and len(entry) == 3 and all(
        isinstance(n, int) and n >= 0 for n in entry[1:])
    try:
      protocols_lib.parse(entry[0] if ok else "")
    except ValueError:
      ok = False
    if not ok:
      raise ConfigError(f"config.eval.protocol_limits: {entry!r} is not a "
                        "(protocol, max train images >= 0, max test images "
                        ">= 0) triple")
  if ev.figure_images < 2:
    raise ConfigError(f"config.eval.figure_images must be >= 2, "
                      f"got {ev.figure_images!r}")
  if ev.heldout_every_steps and ev.heldout_images <= 0:
    raise ConfigError("config.eval.heldout_images must be positive")


def _validate_vit(config, method, image_shape):
  """A ViT method needs a ViT and multi-crop; a ViT needs sides that are
  multiples of its patch (crops, eval patches, whole images)."""
  vit_model = config.model.get("name", "resnet") in vit.VIT_SIZES
  vit_methods = ", ".join(methods.names("vit"))
  if method.backbone == "vit":
    if not vit_model:
      raise ConfigError(f"config.model.name must be a ViT "
                        f"({', '.join(vit.VIT_SIZES)}) for method "
                        f"'{config.method}'")
    if config.get("crop", "patches") != "multicrop":
      raise ConfigError(f"config.crop must be 'multicrop' for method "
                        f"'{config.method}'")
  elif vit_model:
    raise ConfigError(f"config.model.name: ViTs train with method "
                      f"{vit_methods}, not '{config.method}'")
  if config.get("crop", "patches") == "multicrop" and not vit_model:
    raise ConfigError(f"config.crop 'multicrop' is for the ViT methods "
                      f"({vit_methods})")
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
