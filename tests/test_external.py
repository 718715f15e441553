"""Imported checkpoints (torchvision, solo-learn, timm layouts): features
equal the reference PyTorch models' (written here from the published
architectures; torchvision / timm are not needed), bad files are one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bagssl_jax import checkpoints
from tests import torch_references

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SOLO_CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _images(n, size, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3),
                                              dtype=np.uint8)


def _assert_close(h, ref):
  h, ref = np.asarray(h), np.asarray(ref)
  assert h.shape == ref.shape
  err, scale = np.abs(h - ref).max(), np.abs(ref).max()
  assert err <= 1e-4 * scale, (err, scale)


# Equivalence with the PyTorch models.


def test_torchvision_resnet18_pth_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = torch_references.torch_resnet(torch, "resnet18")
  path = tmp_path / "resnet18.pth"
  torch.save(net.state_dict(), path)  # fc kept: ignored on import
  m = checkpoints.load_external(path, "torchvision", "resnet18")
  assert m.config.data.mean == IMAGENET[0] and m.config.input_size == 224
  images = _images(4, 45)  # odd side: every stride-2 layer's padding matters
  m.config.input_size = 45  # run on the 45 px images as they are
  h, z = m.embed_patches(images)
  np.testing.assert_array_equal(h, z)  # no projector: z = h
  _assert_close(h, torch_references.torch_h(torch, net, images, *IMAGENET))


def test_torchvision_resnet50_safetensors_with_projector(tmp_path):
  torch = pytest.importorskip("torch")
  from safetensors.torch import save_file
  net = torch_references.torch_resnet(torch, "resnet50")
  proj = torch_references.randomised(torch, torch.nn.Sequential(
      torch.nn.Linear(2048, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(),
      torch.nn.Linear(64, 32, bias=False)), seed=3)
  state = {f"module.backbone.{k}": v for k, v in net.state_dict().items()}
  state.update({f"module.projector.{k}": v
                for k, v in proj.state_dict().items()})
  path = tmp_path / "r50.safetensors"
  save_file({k: v.contiguous() for k, v in state.items()}, str(path))
  m = checkpoints.load_external(path, "torchvision", "resnet50")
  m.config.input_size = 64
  images = _images(2, 64, seed=1)
  h, z = m.embed_patches(images)
  ref = torch_references.torch_h(torch, net, images, *IMAGENET)
  _assert_close(h, ref)
  with torch.no_grad():
    _assert_close(z, proj(torch.from_numpy(ref)).numpy())


def test_solo_learn_cifar_resnet18_ckpt_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = torch_references.torch_resnet(torch, "resnet18", cifar_stem=True)
  state = {f"backbone.{k}": v for k, v in net.state_dict().items()
           if not k.startswith("fc.")}
  state.update({f"momentum_backbone.{k}": v for k, v in
                net.state_dict().items()})
  state["classifier.weight"] = torch.zeros(10, 512)
  path = tmp_path / "solo.ckpt"
  torch.save({"state_dict": state, "epoch": 999,
              "hyper_parameters": {"method": "byol"}}, path)
  m = checkpoints.load_external(path, "solo-learn", "resnet18")
  assert m.config.input_size == 32 and m.config.data.mean == SOLO_CIFAR[0]
  images = _images(4, 32, seed=2)
  _assert_close(m.embed_patches(images)[0],
                torch_references.torch_h(torch, net, images, *SOLO_CIFAR))


def test_timm_vit_small_npz_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = torch_references.torch_vit(torch)
  path = tmp_path / "vit.npz"
  np.savez(path, **{k: v.numpy() for k, v in net.state_dict().items()})
  m = checkpoints.load_external(path, "timm", "vit_small")
  assert m.config.input_size == 32
  images = _images(3, 32, seed=4)
  h, _ = m.embed_patches(images)
  _assert_close(h, torch_references.torch_h(torch, net, images, *IMAGENET))


# Bad checkpoints: one line naming the problem.


def _resnet18_npz(tmp_path, drop=(), extra=(), width=64, stem=7):
  """A torchvision-named ResNet-18 state dict of zeros, as .npz."""
  shapes = {"conv1.weight": (width, 3, stem, stem)}
  for p in ("weight", "bias", "running_mean", "running_var"):
    shapes[f"bn1.{p}"] = (width,)
  cin = width
  for i in range(4):
    planes = width * 2**i
    for j in range(2):
      b = f"layer{i + 1}.{j}"
      shapes[f"{b}.conv1.weight"] = (planes, cin, 3, 3)
      shapes[f"{b}.conv2.weight"] = (planes, planes, 3, 3)
      bns = ["bn1", "bn2"]
      if i > 0 and j == 0:
        shapes[f"{b}.downsample.0.weight"] = (planes, cin, 1, 1)
        bns.append("downsample.1")
      for bn in bns:
        for p in ("weight", "bias", "running_mean", "running_var"):
          shapes[f"{b}.{bn}.{p}"] = (planes,)
      cin = planes
  arrays = {k: np.zeros(s, np.float32) for k, s in shapes.items()
            if k not in drop}
  arrays.update({k: np.zeros(3, np.float32) for k in extra})
  path = tmp_path / "r18.npz"
  np.savez(path, **arrays)
  return path


def test_missing_and_unknown_keys_one_line(tmp_path):
  m = checkpoints.load_external(_resnet18_npz(tmp_path), "torchvision",
                                "resnet18")
  assert m.params["backbone"]["stem_conv"]["kernel"].shape == (7, 7, 3, 64)
  bad = _resnet18_npz(tmp_path, drop=("layer2.0.conv1.weight",),
                      extra=("layer5.0.conv1.weight",))
  with pytest.raises(checkpoints.CheckpointError) as e:
    checkpoints.load_external(bad, "torchvision", "resnet18")
  msg = str(e.value)
  assert "\n" not in msg
  assert "missing keys layer2.0.conv1.weight" in msg
  assert "unknown keys layer5.0.conv1.weight" in msg
  with pytest.raises(checkpoints.CheckpointError, match="no architecture"):
    checkpoints.load_external(bad, "torchvision", "resnet101")
  with pytest.raises(checkpoints.CheckpointError, match="unknown checkpoint "
                     "format"):
    (tmp_path / "w.bin").write_bytes(b"0")
    checkpoints.load_external(tmp_path / "w.bin", "torchvision", "resnet18")


# The eval binary on an imported checkpoint (Table 5 protocols).


def _solo_npz(path, width, seed=0):
  """Random He-init weights of a solo-learn CIFAR ResNet-18, as .npz."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for k, v in np.load(_resnet18_npz(path.parent, width=width, stem=3)).items():
    if k.endswith("running_var"):
      v = 1. + 0.1 * rng.random(v.shape)
    elif k.endswith("weight") and v.ndim == 1:
      v = np.ones_like(v)
    elif v.ndim == 4:
      v = rng.normal(0, np.sqrt(2. / v[0].size), v.shape)
    arrays[f"backbone.{k}"] = v.astype(np.float32)
  np.savez(path, **arrays)
  return path


def test_binary_table5_on_imported_solo_learn_resnet18(tmp_path):
  from PIL import Image
  from tests.conftest import ROOT
  rng = np.random.default_rng(0)
  for split, n in (("train", 6), ("test", 3)):
    for c in ("a", "b"):
      os.makedirs(tmp_path / "data" / split / c)
      for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                        ).save(tmp_path / "data" / split / c / f"{i}.png")
  ckpt = _solo_npz(tmp_path / "solo.npz", width=16)  # narrow: a fast test
  out = tmp_path / "out"
  cmd = [sys.executable, "-m", "bagssl_jax.eval",
         f"--external=solo-learn:resnet18:{ckpt}",
         "--config=configs/eval/table5.py:runlocal", f"--workdir={out}",
         "--config.data.name=image_folder", f"--config.data.path={tmp_path}/data",
         "--config.data.image_size=32", "--config.input_size=16",
         "--config.eval.probe_steps=20", "--config.eval.health_images=0",
         "--config.eval.probe_learning_rates=(0.1,)",
         "--config.eval.probe_weight_decays=(0.0,)",
         "--config.eval.figures=False"]
  r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                     timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  results = json.loads((out / "eval" / "results.json").read_text())
  for name in ("central", "all_patches", "local_aggregation"):
    assert 0 <= results[name]["linear"] <= 1 and "knn" in results[name]
  assert (out / "eval" / "results.md").exists()
  assert "local pass train: 12/12 images" in r.stderr, r.stderr
  assert "orbax" not in r.stderr
  # Bad --external values: one line each (the binary prints it as `error:`).
  from bagssl_jax import importers
  with pytest.raises(checkpoints.CheckpointError, match="LAYOUT:ARCH:PATH"):
    importers.parse_spec("solo-learn:resnet18")
  with pytest.raises(checkpoints.CheckpointError, match="unknown checkpoint "
                     "layout 'caffe'"):
    importers.parse_spec("caffe:resnet18:x.pth")
  layout, arch, path = importers.parse_spec("solo-learn:resnet18:nope.pth")
  with pytest.raises(checkpoints.CheckpointError,
                     match="^no checkpoint file nope.pth$"):
    importers.load_external(path, layout, arch)


def test_table_presets_load_and_validate():
  import importlib.util
  from bagssl_jax import config as config_lib
  from bagssl_jax.evaluation import embedding
  from tests.conftest import ROOT
  got = {}
  for name in ("table4", "table5"):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "configs", "eval", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got[name] = module.get_config(None)
    config_lib.validate_eval(got[name])
  t4, t5 = got["table4"].eval, got["table5"].eval
  assert t4.protocols == ("central", "1_crop", "16_crops", "48_crops")
  assert got["table4"].data.image_size == 256 and t4.central_crop == 224
  assert tuple(got["table4"].rrc_scale) == (0.08, 1.0)
  assert got["table5"].patch_size == 16 and t5.local_stride == 4
  images = np.arange(2 * 256 * 256).reshape(2, 256, 256, 1)
  crop = embedding.central_crop(images, 224)
  np.testing.assert_array_equal(crop, images[:, 16:240, 16:240])


def test_torch_checkpoint_without_torch_is_one_line(tmp_path, monkeypatch):
  path = tmp_path / "resnet50.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
  with pytest.raises(checkpoints.CheckpointError,
                     match="torch checkpoint and torch is not installed"):
    checkpoints.load_external(path, "torchvision", "resnet50")
