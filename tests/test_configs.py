"""Every configs/*.py: loads, validates, round-trips through config.json, and
(runlocal) builds its train state abstractly with jax.eval_shape."""
import glob
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import pytest

from bagssl_jax import config as config_lib
from bagssl_jax import methods, models, optim, steps
from bagssl_jax.config import presets
from tests.conftest import ROOT, load_config

NAMES = sorted(os.path.splitext(os.path.basename(p))[0]
               for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))
# Native image sides of the fixed-size datasets (others set data.image_size).
NATIVE_SIDE = {"cifar10": 32, "cifar100": 32, "fashion_mnist": 28}


def _module(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "configs", name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _source(name):
  with open(os.path.join(ROOT, "configs", name + ".py")) as f:
    return f.read()


def _built(name):
  """(dataset, method) of the one `presets.build` call of a config file."""
  m = re.search(r'presets\.build\("(\w+)", "(\w+)", arg\)', _source(name))
  return m.groups() if m else None


# The paper's configs (every dataset but the embedded Fashion-MNIST default).
PRESET_NAMES = [n for n in NAMES if not n.startswith("fashion_mnist")]
# ViT-method configs (DINO / SelfPatch): no rrc variant.
VIT_NAMES = [n for n in NAMES
             if methods.get(_built(n)[1]).backbone == "vit"]


@pytest.mark.parametrize("name", NAMES)
def test_every_config_is_built_by_the_one_builder(name):
  dataset, method = _built(name)
  assert name == f"{dataset}_{method}"
  assert "def get_config(arg=None):" in _source(name)
  with pytest.raises(ValueError, match="unknown config variant 'nosuch'"):
    load_config(name, "nosuch")


def _image_shape(config):
  side = config.data.image_size or NATIVE_SIDE.get(config.data.name)
  return None if not side else (side, side, config.data.channels)


def test_every_paper_config_exists():
  expected = {f"{d}_{m}" for d, ms in {
      "cifar10": ("vicreg", "simclr", "tcr", "byol", "spectral",
                  "barlow_twins"),
      "cifar100": ("vicreg", "simclr", "tcr", "byol"),
      "imagenet100": ("vicreg", "simclr", "tcr", "byol"),
      "imagenet": ("simclr", "tcr", "byol")}.items() for m in ms}
  assert expected <= set(PRESET_NAMES), expected - set(PRESET_NAMES)


@pytest.mark.parametrize("arg", [None, "runlocal", "rrc,runlocal"])
@pytest.mark.parametrize("name", NAMES)
def test_loads_validates_and_round_trips(name, arg):
  if arg and "rrc" in arg and name in VIT_NAMES:
    pytest.skip(f"{name} has no rrc variant")
  config = load_config(name, arg)
  if arg and "rrc" in arg and config.get("crop") != "rrc":
    pytest.skip(f"{name} has no rrc variant")
  config_lib.validate(config, _image_shape(config), data_parallel=4)
  restored = config_lib.from_json(config_lib.to_json(config))
  assert restored.to_dict() == config.to_dict()
  if arg and "runlocal" in arg:
    assert config.model.width == 8 and config.batch_size == 16
    assert max(config.model.projector_dims) <= 64
    assert max(_image_shape(config) or (32,)) <= 64


def _abstract_batch(config):
  """ShapeDtypeStructs of the host batch a runlocal config trains on."""
  b, n, c = config.batch_size, config.num_patches, config.data.channels
  h, w, _ = _image_shape(config) or (64, 64, c)
  sds = jax.ShapeDtypeStruct
  batch = {"label": sds((b,), jnp.int32)}
  if config.crop in ("rrc", "multicrop"):
    batch.update(image=sds((b, h, w, c), jnp.uint8),
                 boxes=sds((b, n, 4), jnp.float32))
  else:
    p = config.patch_size
    batch["patches"] = sds((b, n, p, p, c), jnp.uint8)
  return batch


@pytest.mark.parametrize("arg", ["runlocal", "rrc,runlocal"])
@pytest.mark.parametrize("name", NAMES)
def test_runlocal_train_step_traces(name, arg):
  """Init and one whole train step (augment, model, loss, update, EMA) trace
  for every config: shapes and the method wiring hold, nothing compiles."""
  if "rrc" in arg and name in VIT_NAMES:
    pytest.skip(f"{name} has no rrc variant")
  config = load_config(name, arg)
  if "rrc" in arg and config.get("crop") != "rrc":
    pytest.skip(f"{name} has no rrc variant")
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, config.batch_size,
                                config.total_steps, steps_per_epoch=10)
  init = steps.make_init(model, tx, config)
  state = jax.eval_shape(init, jax.random.PRNGKey(0))
  if name in VIT_NAMES:  # ViT + DINO head (+ aggregator, patch head)
    assert set(state.params) >= {"backbone", "head"}
    assert state.target["center"].shape == (config.model.out_dim,)
  else:
    assert set(state.params) >= {"backbone", "projector"}
    dims = config.model.projector_dims
    last = state.params["projector"][f"dense{len(dims) - 1}"]["kernel"]
    assert last.shape[-1] == dims[-1]
  method = methods.get(config.method)
  assert ("predictor" in state.params) == method.predictor
  assert (state.target is not None) == method.target
  step = steps.make_train_step(model, tx, lr, config, config.total_steps)
  new_state, metrics = jax.eval_shape(step, state, _abstract_batch(config))
  assert metrics["loss"].shape == ()
  assert jax.tree.structure(new_state) == jax.tree.structure(state)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_docstring_states_experiment_sources_and_paper_number(name):
  doc = _module(name).__doc__
  assert doc and "Experiment:" in doc and "Hyper-parameters" in doc, name
  m = re.search(r"Paper number:(.*?)(\n\n|$)", doc, re.S)
  assert m, f"{name}: no 'Paper number:' line"
  assert re.search(r"\d%", m.group(1)) or "not verified" in m.group(1), name


def test_rrc_switches_to_the_multiscale_baseline():
  patches = load_config("cifar10_simclr")
  base = load_config("cifar10_simclr", "rrc")
  assert (patches.crop, patches.patch_size, patches.input_size) == (
      "patches", 14, 32)
  assert (base.crop, base.input_size, base.num_patches) == ("rrc", 32, 2)
  assert tuple(base.rrc_scale) == (0.08, 1.0)
  assert load_config("imagenet100_byol", "rrc").input_size == 224
  imagenet = load_config("imagenet_vicreg", "rrc")
  assert (imagenet.crop, imagenet.input_size, imagenet.num_patches) == (
      "rrc", 224, 2)
  assert load_config("imagenet_vicreg", "patch=64").patch_size == 64


def test_patch_and_input_variants():
  config = load_config("imagenet_simclr", "patch=64,input=96")
  assert (config.patch_size, config.input_size) == (64, 96)
  assert config.eval.all_patches_stride == 64
  assert load_config("imagenet_tcr").patch_size == 32
  # runlocal keeps its tiny images whatever the patch variant says.
  small = load_config("imagenet_byol", "patch=96,runlocal")
  config_lib.validate(small, _image_shape(small))


@pytest.mark.parametrize("arg", ["rcc", "patch=", "patch=x", "rrc=1",
                                 "runlocal,bogus"])
def test_unknown_or_malformed_variants_raise(arg):
  with pytest.raises(ValueError, match="variant"):
    presets.build("cifar10", "vicreg", arg)


def test_method_presets_match_loss_keywords():
  """Every preset's loss keywords are the method's, and a two-view loss's
  defaults are keywords of its function."""
  import inspect  # pylint: disable=g-import-not-at-top
  for name, method in methods.METHODS.items():
    for scale, preset in method.presets.items():
      assert set(preset.get("loss", {})) <= method.keywords, (name, scale)
    fn = getattr(method.loss, "pair_loss", method.loss)
    if fn is not None:
      params = set(inspect.signature(fn).parameters)
      params |= set(inspect.signature(method.loss).parameters)
      assert method.keywords <= params, name


def test_rrc_on_a_vit_method_is_refused():
  with pytest.raises(ValueError, match="rrc"):
    presets.build("fashion_mnist", "dino", "rrc")


def test_paper_configs_run_a_real_step(tmp_path):
  """One real step of a CIFAR config under TFDS mock data and of the
  ImageNet-100 RRC baseline on an image folder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from bagssl_jax import train  # pylint: disable=g-import-not-at-top
  from tests.test_data import _write_image_folder  # pylint: disable=g-import-not-at-top
  config = load_config("cifar10_byol", "runlocal")
  config.total_steps, config.run_eval = 1, False
  # The CIFAR pipeline (14-px patches upsampled to 32) and BYOL's target are
  # what runs here; ResNet-18's own step compiles in test_models.py.
  config.model.depth = "resnet10"
  with tfds.testing.mock_data(num_examples=32):
    state = train.train_and_evaluate(config, str(tmp_path / "cifar"))
  assert int(state.step) == 1 and state.target is not None
  _write_image_folder(tmp_path / "images")
  config = load_config("imagenet100_vicreg", "rrc,runlocal")
  config.data.path = str(tmp_path / "images")
  config.total_steps, config.batch_size, config.run_eval = 1, 8, False
  # The RRC pipeline on a folder is what runs here; ResNet-50's step is
  # test_train.py's ImageNet test (its compile alone is ~1 minute).
  config.model.depth = "resnet18"
  state = train.train_and_evaluate(config, str(tmp_path / "in100"))
  assert int(state.step) == 1


def test_paper_presets_follow_the_paper_protocol():
  cifar = load_config("cifar10_vicreg")
  assert (cifar.num_patches, cifar.multi_view, cifar.patch_size,
          cifar.input_size) == (2, "pairs", 14, 32)
  assert cifar.num_epochs == load_config("cifar10_vicreg", "rrc").num_epochs
  assert tuple(cifar.eval.protocols) == ("central", "1_patch", "16_patches",
                                         "256_patches")
  assert (cifar.eval.subset_max_train_images,
          cifar.eval.subset_max_test_images) == (0, 0)  # whole test set
  imagenet = load_config("imagenet_vicreg", "patch=32")
  assert (imagenet.patch_size, imagenet.input_size) == (32, 224)
  rrc = load_config("imagenet100_vicreg", "rrc")
  assert tuple(rrc.eval.protocols) == ("central", "1_crop", "16_crops",
                                       "48_crops")
  many = load_config("cifar10_vicreg", "views=20")
  assert (many.num_patches, many.multi_view) == (20, "mean")
  # What the paper's text states (docs/paper_tables.md): ResNet-34 on CIFAR
  # and ResNet-50 on ImageNet(-100); 14-px patches upsampled to 32, 100-px
  # to 224, 32-px to 224; RandomResizedCrop(0.08, 1) of the 32- / 224-px
  # image (9-32 / 64-224 px crops); two patches; Fig. 3a's 100-px patches.
  for ds, depth, patch, side in (("cifar10", "resnet34", 14, 32),
                                 ("cifar100", "resnet34", 14, 32),
                                 ("imagenet100", "resnet50", 100, 224),
                                 ("imagenet", "resnet50", 32, 224)):
    for method in ("vicreg", "simclr", "byol", "tcr"):
      c, b = (load_config(f"{ds}_{method}", v) for v in (None, "rrc"))
      assert (c.model.depth, c.patch_size, c.input_size, c.num_patches,
              c.crop) == (depth, patch, side, 2, "patches"), (ds, method)
      assert (b.model.depth, b.input_size, tuple(b.rrc_scale),
              b.num_patches) == (depth, side, (0.08, 1.0), 2), (ds, method)
      assert (c.data.image_size or 32) == side, (ds, method)
  assert load_config("imagenet_vicreg", "rrc").patch_size == 100
  assert load_config("imagenet_vicreg", "rrc,patch=64").patch_size == 64


def test_crop_protocols_maps_patch_counts_to_crop_counts():
  assert presets.crop_protocols(("central", "1_patch", "16_patches",
                                 "all_patches")) == (
                                     "central", "1_crop", "16_crops",
                                     "all_patches")


@pytest.mark.parametrize("entry", [("256_patches", 10), ("nosuch", 1, 1),
                                   ("16_patches", -1, 0)])
def test_bad_protocol_limits_raise_one_config_error(entry):
  config = load_config("fashion_mnist_vicreg")
  config.eval.protocol_limits = (entry,)
  with pytest.raises(config_lib.ConfigError, match="protocol_limits"):
    config_lib.validate_eval(config)
