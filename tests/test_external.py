"""Imported checkpoints (torchvision, solo-learn, timm layouts): features
equal the reference PyTorch models' (written here from the published
architectures; torchvision / timm are not needed), bad files are one line."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bagssl_jax import checkpoints

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SOLO_CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _images(n, size, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3),
                                              dtype=np.uint8)


# PyTorch reference models, from torchvision's ResNet and timm's ViT specs.


def _torch_resnet(torch, arch, cifar_stem=False):
  nn = torch.nn

  class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, down):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(planes)
      self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(planes)
      self.downsample = down

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return torch.relu(y + (self.downsample(x) if self.downsample else x))

  class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, down):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(planes)
      self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(planes)
      self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(planes * 4)
      self.downsample = down

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = torch.relu(self.bn2(self.conv2(y)))
      y = self.bn3(self.conv3(y))
      return torch.relu(y + (self.downsample(x) if self.downsample else x))

  block, layers = {"resnet18": (Basic, (2, 2, 2, 2)),
                   "resnet50": (Bottle, (3, 4, 6, 3))}[arch]

  class ResNet(nn.Module):

    def __init__(self):
      super().__init__()
      if cifar_stem:  # solo-learn's CIFAR stem
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 2, bias=False)
        self.maxpool = nn.Identity()
      else:
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
      self.bn1 = nn.BatchNorm2d(64)
      cin = 64
      for i, n in enumerate(layers):
        planes, blocks = 64 * 2**i, []
        for j in range(n):
          stride = 2 if i > 0 and j == 0 else 1
          down = None
          if stride != 1 or cin != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(cin, planes * block.expansion, 1, stride,
                          bias=False), nn.BatchNorm2d(planes * block.expansion))
          blocks.append(block(cin, planes, stride, down))
          cin = planes * block.expansion
        setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
      self.fc = nn.Linear(cin, 10)

    def forward(self, x):
      x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
      for i in range(4):
        x = getattr(self, f"layer{i + 1}")(x)
      return x.mean((2, 3))

  return _randomised(torch, ResNet())


def _randomised(torch, model, seed=0):
  """Random weights and BatchNorm statistics (eval mode)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in model.state_dict().items():
      if t.dtype != torch.float32:
        continue
      if name.endswith("running_var"):
        t.copy_(0.5 + torch.rand(t.shape, generator=g))
      elif name.endswith(("running_mean", "bias")):
        t.copy_(0.1 * torch.randn(t.shape, generator=g))
      elif name.endswith("weight") and t.ndim == 1:
        t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
      else:
        fan_in = max(1, t[0].numel())
        t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2. / fan_in))
  return model.eval()


def _torch_vit(torch, img=32, patch=16, dim=384, depth=12, heads=6):
  """timm's VisionTransformer (pre-norm, LayerNorm eps 1e-6, exact GELU,
  [CLS] with its own position embedding, class-token pooling)."""
  nn = torch.nn

  class Attn(nn.Module):

    def __init__(self):
      super().__init__()
      self.qkv = nn.Linear(dim, 3 * dim)
      self.proj = nn.Linear(dim, dim)

    def forward(self, x):
      b, n, _ = x.shape
      q, k, v = self.qkv(x).reshape(b, n, 3, heads, dim // heads).permute(
          2, 0, 3, 1, 4)
      a = ((q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
      return self.proj((a @ v).transpose(1, 2).reshape(b, n, dim))

  class Mlp(nn.Module):

    def __init__(self):
      super().__init__()
      self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
      return self.fc2(nn.functional.gelu(self.fc1(x)))

  class Block(nn.Module):

    def __init__(self):
      super().__init__()
      self.norm1, self.norm2 = nn.LayerNorm(dim, 1e-6), nn.LayerNorm(dim, 1e-6)
      self.attn, self.mlp = Attn(), Mlp()

    def forward(self, x):
      x = x + self.attn(self.norm1(x))
      return x + self.mlp(self.norm2(x))

  class PatchEmbed(nn.Module):

    def __init__(self):
      super().__init__()
      self.proj = nn.Conv2d(3, dim, patch, patch)

  class ViT(nn.Module):

    def __init__(self):
      super().__init__()
      self.patch_embed = PatchEmbed()
      self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
      self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (img // patch)**2, dim))
      self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
      self.norm = nn.LayerNorm(dim, 1e-6)
      self.head = nn.Linear(dim, 10)

    def forward(self, x):
      x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
      x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1)
      return self.norm(self.blocks(x + self.pos_embed))[:, 0]

  model = ViT()
  g = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for name, t in model.named_parameters():
      norm = "norm" in name and name.endswith("weight")
      t.copy_(float(norm) + 0.02 * torch.randn(t.shape, generator=g))
  return model.eval()


def _torch_h(torch, model, images, mean, std):
  x = torch.from_numpy(images).float().div(255.).permute(0, 3, 1, 2)
  x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None,
                                                                    None]
  with torch.no_grad():
    return model(x).numpy()


def _assert_close(h, ref):
  h, ref = np.asarray(h), np.asarray(ref)
  assert h.shape == ref.shape
  err, scale = np.abs(h - ref).max(), np.abs(ref).max()
  assert err <= 1e-4 * scale, (err, scale)


# Equivalence with the PyTorch models.


def test_torchvision_resnet18_pth_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = _torch_resnet(torch, "resnet18")
  path = tmp_path / "resnet18.pth"
  torch.save(net.state_dict(), path)  # fc kept: ignored on import
  m = checkpoints.load_external(path, "torchvision", "resnet18")
  assert m.config.data.mean == IMAGENET[0] and m.config.input_size == 224
  images = _images(4, 45)  # odd side: every stride-2 layer's padding matters
  m.config.input_size = 45  # run on the 45 px images as they are
  h, z = m.embed_patches(images)
  np.testing.assert_array_equal(h, z)  # no projector: z = h
  _assert_close(h, _torch_h(torch, net, images, *IMAGENET))


def test_torchvision_resnet50_safetensors_with_projector(tmp_path):
  torch = pytest.importorskip("torch")
  from safetensors.torch import save_file
  net = _torch_resnet(torch, "resnet50")
  proj = _randomised(torch, torch.nn.Sequential(
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
  ref = _torch_h(torch, net, images, *IMAGENET)
  _assert_close(h, ref)
  with torch.no_grad():
    _assert_close(z, proj(torch.from_numpy(ref)).numpy())


def test_solo_learn_cifar_resnet18_ckpt_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = _torch_resnet(torch, "resnet18", cifar_stem=True)
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
                _torch_h(torch, net, images, *SOLO_CIFAR))


def test_timm_vit_small_npz_equals_torch(tmp_path):
  torch = pytest.importorskip("torch")
  net = _torch_vit(torch)
  path = tmp_path / "vit.npz"
  np.savez(path, **{k: v.numpy() for k, v in net.state_dict().items()})
  m = checkpoints.load_external(path, "timm", "vit_small")
  assert m.config.input_size == 32
  images = _images(3, 32, seed=4)
  h, _ = m.embed_patches(images)
  _assert_close(h, _torch_h(torch, net, images, *IMAGENET))


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
