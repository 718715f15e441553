"""PyTorch eager reference of the reference CPU workload (bench train section).

Used only by `python -m bagssl_jax.bench --sections=torch` to put the JAX step
next to PyTorch on the same machine in the same run. PyTorch is not a
dependency of bagssl_jax: without it the section reports "not installed"
(`pip install torch==2.13.0` gives the CPU wheel).

The workload matches `sections.workload_config`: ResNet-18 with the CIFAR stem
(3x3 stride-1 conv, no max-pool), BasicBlocks [2,2,2,2], widths 16/32/64/128,
BatchNorm, 1x14x14 inputs, global average pool, projector
Linear(128,512)-BN-ReLU-Linear(512,512)-BN-ReLU-Linear(512,512), VICReg
25/25/1, SGD momentum 0.9, float32, 256 images x 2 patches per step.
"""
from __future__ import annotations

import time


def basic_block(torch):
  """torchvision's BasicBlock, with its module names (so state-dict keys
  match torchvision's; the import tests build their ResNets from it): two 3x3
  convolutions and an identity or `down` shortcut."""
  nn = torch.nn

  class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, down=None):
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

  return BasicBlock


def run(repeats, threads=2, batch_images=256, num_patches=2, patch=14):
  """Median patches/s of PyTorch eager on the workload, and its setup."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from torch import nn
  except ImportError:
    return {"torch": "not installed"}
  torch.set_num_threads(threads)
  torch.manual_seed(0)

  block = basic_block(torch)

  widths = (16, 32, 64, 128)
  layers = [nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU()]
  cin = widths[0]
  for i, w in enumerate(widths):
    for j in range(2):
      stride = 2 if i > 0 and j == 0 else 1
      down = None
      if stride != 1 or cin != w:
        down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False),
                             nn.BatchNorm2d(w))
      layers.append(block(cin, w, stride, down))
      cin = w
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(128, 512), nn.BatchNorm1d(512), nn.ReLU(),
             nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
             nn.Linear(512, 512)]
  model = nn.Sequential(*layers)
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
  n = batch_images * num_patches
  x = torch.randn(n, 1, patch, patch)

  def vicreg(z1, z2):
    d = z1.shape[1]
    inv = torch.nn.functional.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)
    std = (torch.relu(1 - torch.sqrt(z1.var(0) + 1e-4)).mean() +
           torch.relu(1 - torch.sqrt(z2.var(0) + 1e-4)).mean()) / 2
    def off(c):
      return c.pow(2).sum() - c.diagonal().pow(2).sum()
    cov = (off(z1.T @ z1 / (len(z1) - 1)) + off(z2.T @ z2 / (len(z2) - 1))) / d
    return 25 * inv + 25 * std + cov

  def step():
    z = model(x).view(batch_images, num_patches, -1)
    loss = vicreg(z[:, 0], z[:, 1])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  for _ in range(3):
    step()
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(5):
      step()
    rates.append(5 * n / (time.perf_counter() - t0))
  rates.sort()
  return {"torch_train_patches_per_s": rates[len(rates) // 2],
          "torch_version": torch.__version__, "torch_threads": threads}
