"""Export to PyTorch's layouts: round trips through the importers, strict
loads into PyTorch reference models written from the specs, one-line errors
for models a layout cannot hold."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bagssl_jax import checkpoints, models
from bagssl_jax.importers import export
from bagssl_jax.loaded import CheckpointError, LoadedModel
from conftest import ROOT, load_config
from tests import torch_references

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _images(n, size, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3),
                                              dtype=np.uint8)


def _native(config, seed=0):
  """A LoadedModel of `config` with random weights and BatchNorm stats."""
  model = models.make_model(config)
  vit = models.is_vit(config)
  variables = model.init(jax.random.PRNGKey(seed),
                         jnp.zeros(models.input_shape(config)),
                         **({"method": model.embed} if vit else
                            {"train": False}))
  rng = np.random.default_rng(seed)

  def perturb(path, x):  # BatchNorm statistics as after training
    if "var" in jax.tree_util.keystr(path):
      return jnp.asarray(rng.uniform(0.5, 1.5, x.shape), jnp.float32)
    return jnp.asarray(x + 0.1 * rng.standard_normal(x.shape), jnp.float32)

  stats = jax.tree_util.tree_map_with_path(
      perturb, variables.get("batch_stats", {}))
  return LoadedModel(config, variables["params"], stats, 7, model)


def _resnet_config(layout):
  if layout == "torchvision":
    config = load_config("imagenet_vicreg", "runlocal")
    config.model.update(depth="resnet18", width=64, torch_padding=True)
  else:
    config = load_config("cifar10_vicreg", "runlocal")
    config.model.update(depth="resnet18", width=64, torch_padding=True,
                        stem_padding=2)
  config.model.projector_dims = (32, 16)
  return config


def _close(h, ref):
  h, ref = np.asarray(h), np.asarray(ref)
  assert h.shape == ref.shape
  assert np.abs(h - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("layout", ["torchvision", "solo-learn"])
def test_resnet_export_round_trip_and_strict_torch_load(tmp_path, layout):
  native = _native(_resnet_config(layout))
  path = tmp_path / "r18.safetensors"
  meta = native.export(path, layout=layout, with_projector=True)
  assert meta["architecture"] == "resnet18" and meta["step"] == 7
  assert json.loads((tmp_path / "r18.safetensors.json").read_text())[
      "layout"] == layout
  size = 40 if layout == "torchvision" else 32
  images = _images(3, size)
  native.config.input_size = size
  h, z = native.embed_patches(images)
  back = checkpoints.load_external(path, layout, "resnet18",
                                   mean=native.config.data.mean,
                                   std=native.config.data.std)
  back.config.input_size = size
  h2, z2 = back.embed_patches(images)
  np.testing.assert_allclose(h2, h, rtol=1e-6, atol=1e-6 * np.abs(h).max())
  np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-5 * np.abs(z).max())
  torch = pytest.importorskip("torch")
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  state = load_file(str(path))
  prefix = "backbone." if layout == "solo-learn" else ""
  net = torch_references.torch_resnet(torch, "resnet18",
                                      cifar_stem=layout == "solo-learn")
  net.fc = torch.nn.Identity()
  net.load_state_dict({k[len(prefix):]: torch.from_numpy(v)
                       for k, v in state.items() if k.startswith(prefix)
                       and not k.startswith("projector.")}, strict=True)
  _close(h, torch_references.torch_h(torch, net, images,
                                     native.config.data.mean,
                                     native.config.data.std))


def test_imported_checkpoint_exported_again_is_bit_identical(tmp_path):
  torch = pytest.importorskip("torch")
  net = torch_references.torch_resnet(torch, "resnet50")
  original = {k: v.numpy() for k, v in net.state_dict().items()
              if not k.startswith("fc.") and not k.endswith("tracked")}
  np.savez(tmp_path / "r50.npz", **original)
  m = checkpoints.load_external(tmp_path / "r50.npz", "torchvision",
                                "resnet50")
  tensors, meta = export.state_dict(m, "torchvision")
  assert meta["architecture"] == "resnet50"
  assert {k for k in tensors if not k.endswith("tracked")} == set(original)
  for k, v in original.items():
    assert tensors[k].dtype == v.dtype and np.array_equal(tensors[k], v), k


def test_vit_export_to_timm_loads_strictly_and_matches(tmp_path):
  config = load_config("fashion_mnist_dino", "runlocal")
  config.model.update(name="vit_tiny", vit_dim=0, vit_depth=0, vit_heads=0,
                      vit_patch=16, exact_gelu=True)
  config.data.update(channels=3, mean=IMAGENET[0], std=IMAGENET[1])
  config.multicrop.global_size = config.input_size = 32
  native = _native(config)
  path = tmp_path / "vit.safetensors"
  meta = native.export(path, layout="timm")
  assert meta["timm_model"] == "vit_tiny_patch16_32"
  images = _images(2, 32, seed=5)
  back = checkpoints.load_external(path, "timm", "vit_tiny")
  h, _ = back.embed_patches(images)
  torch = pytest.importorskip("torch")
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  net = torch_references.torch_vit(torch, img=32, patch=16, dim=192,
                                   depth=12, heads=3)
  net.head = torch.nn.Identity()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(
      str(path)).items()}, strict=True)
  ref = torch_references.torch_h(torch, net, images, *IMAGENET)
  _close(h, ref)
  x = (images / 255. - np.array(IMAGENET[0])) / np.array(IMAGENET[1])
  direct = native.model.apply(native.variables, jnp.asarray(x, jnp.float32),
                              method=native.model.embed)
  _close(direct, ref)


def test_models_no_layout_holds_are_one_line_errors():
  fm = load_config("fashion_mnist_vicreg")
  with pytest.raises(CheckpointError) as e:
    export.check(fm, "torchvision")
  msg = str(e.value)
  assert "\n" not in msg and "model.width is 16" in msg
  assert "model.cifar_stem is True" in msg and "data.channels is 1" in msg
  with pytest.raises(CheckpointError, match="model.vit_dim is 64"):
    export.check(load_config("fashion_mnist_dino"), "timm")
  native = _resnet_config("torchvision")
  native.model.torch_padding = False
  with pytest.raises(CheckpointError, match="torch_padding is False"):
    export.check(native, "torchvision")


def test_export_binary_from_a_run(tmp_path):
  """`python -m bagssl_jax.export` on a 2-step run; a layout that cannot
  hold the run is one error line before anything is restored."""
  folder = tmp_path / "images"
  folder.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for i, image in enumerate(_images(8, 64, seed=6)):
    Image.fromarray(image).save(folder / f"{i}.png")
  workdir, out = tmp_path / "run", tmp_path / "r18.safetensors"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  run = subprocess.run(
      [sys.executable, "-m", "bagssl_jax.main",
       "--config=configs/imagenet_vicreg.py:runlocal",
       "--config.model.depth=resnet18", "--config.model.width=64",
       "--config.model.torch_padding=True", "--config.total_steps=2",
       "--config.batch_size=8", "--config.run_eval=False",
       "--config.data.name=image_folder", f"--config.data.path={folder}",
       "--config.data.num_workers=0", f"--workdir={workdir}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  cmd = [sys.executable, "-m", "bagssl_jax.export", f"--workdir={workdir}",
         f"--out={out}"]
  good = subprocess.run(cmd + ["--layout=torchvision"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert good.returncode == 0, good.stderr[-3000:]
  meta = json.loads((tmp_path / "r18.safetensors.json").read_text())
  assert meta["step"] == 2 and meta["config"]["model"]["depth"] == "resnet18"
  bad = subprocess.run(cmd + ["--layout=solo-learn"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and "Traceback" not in bad.stderr
  assert bad.stderr.strip().splitlines()[-1].startswith(
      "error: this model is not solo-learn's resnet18: model.cifar_stem")
