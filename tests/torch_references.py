"""PyTorch reference models for the import tests, written from the published
specs (torchvision's ResNet, solo-learn's CIFAR stem, timm's ViT): the
torchvision and timm wheels do not load beside the CPU torch here.

Each builder takes the `torch` module (a test-only dependency, imported by the
tests with `pytest.importorskip`)."""
import math

from bagssl_jax.bench import torch_reference


def torch_resnet(torch, arch, cifar_stem=False):
  nn = torch.nn

  Basic = torch_reference.basic_block(torch)  # pylint: disable=invalid-name

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

  return randomised(torch, ResNet())


def randomised(torch, model, seed=0):
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


def torch_vit(torch, img=32, patch=16, dim=384, depth=12, heads=6):
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


def torch_h(torch, model, images, mean, std):
  x = torch.from_numpy(images).float().div(255.).permute(0, 3, 1, 2)
  x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None,
                                                                    None]
  with torch.no_grad():
    return model(x).numpy()
