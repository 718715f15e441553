"""ResNet backbones and the projector MLP (flax Linen).

h = f(x) is the pooled backbone output (the representation); z = g(h) is the
projector output that the SSL loss sees.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

STAGE_SIZES = {
    "resnet10": (1, 1, 1, 1),
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
}
BOTTLENECK = {"resnet10": False, "resnet18": False, "resnet34": False, "resnet50": True}
# False: convolutions lowered as on accelerators even on CPU (bagssl_jax.memory).
CPU_LOWERINGS = True


def _geometry(n, k, s, padding):
  """(output size, leading pad) of a k x k, stride-s convolution over n
  positions: 'SAME' (padding < 0; XLA pads stride-2 layers asymmetrically) or
  `padding` zeros on both sides as torch does (trailing pad unused if the
  stride leaves it out)."""
  if padding < 0:
    out = -(-n // s)
    return out, max((out - 1) * s + k - n, 0) // 2
  return (n + 2 * padding - k) // s + 1, padding


def _tap_matrix(h, w, k, s, padding=-1):
  """0/1 tensor T[in_pos, out_pos, tap] of a k x k, stride-s convolution."""
  ho, ph = _geometry(h, k, s, padding)
  wo, pw = _geometry(w, k, s, padding)
  t = np.zeros((h * w, ho * wo, k * k), np.float32)
  for i in range(ho):
    for j in range(wo):
      for a in range(k):
        for b in range(k):
          y, x = i * s + a - ph, j * s + b - pw
          if 0 <= y < h and 0 <= x < w:
            t[y * w + x, i * wo + j, a * k + b] = 1.0
  return t, ho, wo


def _im2col(x, k, s, padding=-1):
  """(N, H, W, C) -> (N, Ho, Wo, k*k*C) patches of a k x k, stride-s
  convolution, taps ordered (kh, kw, C) like an HWIO kernel's reshape."""
  n, h, w, c = x.shape
  (ho, ph), (wo, pw) = _geometry(h, k, s, padding), _geometry(w, k, s, padding)
  eh, ew = (ho - 1) * s + k - h - ph, (wo - 1) * s + k - w - pw
  x = jnp.pad(x, ((0, 0), (ph, max(eh, 0)), (pw, max(ew, 0)), (0, 0)))
  cols = [x[:, a:a + (ho - 1) * s + 1:s, b:b + (wo - 1) * s + 1:s]
          for a in range(k) for b in range(k)]
  return cols[0] if k == 1 else jnp.concatenate(cols, axis=-1)


class Conv(nn.Module):
  """Square convolution without bias, kernel stored as HWIO; 'SAME' padding,
  or with `padding` >= 0 that many zeros on each side (torch's Conv2d).

  Three lowerings of the same arithmetic, picked by shape for XLA:CPU speed
  (on accelerators only the last is used):
  - output of at most `dense_max_outputs` positions (the 2x2 maps at the end
    of a ResNet on 14x14 patches): one matmul against the unrolled (Toeplitz)
    kernel, ~30x faster than the direct convolution on such tiny maps;
  - strided convolutions and the few-channel stem: im2col + one matmul
    (2-4x faster there);
  - otherwise `lax.conv_general_dilated`.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  dtype: Any = jnp.float32
  dense_max_outputs: int = 4
  cpu_lowerings: bool = True
  padding: int = -1

  @nn.compact
  def __call__(self, x):
    k, s, pad = self.kernel_size, self.strides, self.padding
    kernel = self.param("kernel", nn.initializers.kaiming_normal(),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    kernel = kernel.astype(self.dtype)
    n, h, w, c = x.shape
    ho, wo = _geometry(h, k, s, pad)[0], _geometry(w, k, s, pad)[0]
    cpu = (self.cpu_lowerings and CPU_LOWERINGS
           and jax.default_backend() == "cpu")
    if cpu and k > 1 and ho * wo <= self.dense_max_outputs:
      taps, ho, wo = _tap_matrix(h, w, k, s, pad)
      dense = jnp.einsum("pqt,tio->piqo", taps.astype(self.dtype),
                         kernel.reshape(k * k, c, self.features))
      y = x.reshape(n, h * w * c) @ dense.reshape(h * w * c, -1)
      return y.reshape(n, ho, wo, self.features)
    if cpu and (s > 1 or k * k * c <= 32):
      cols = _im2col(x, k, s, pad)
      return cols @ kernel.reshape(k * k * c, self.features)
    return lax.conv_general_dilated(
        x, kernel, (s, s), "SAME" if pad < 0 else ((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


class _Block(nn.Module):
  """A residual block's fields: width, stride, and the conv / norm factories."""
  filters: int
  strides: int
  conv: Any
  norm: Any


class BasicBlock(_Block):
  """Two 3x3 convolutions with an identity or projection shortcut."""

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.filters, 3, self.strides)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, 3)(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    if x.shape[-1] != self.filters or self.strides != 1:
      x = self.conv(self.filters, 1, self.strides)(x)
      x = self.norm()(x)
    return nn.relu(x + y)


class Bottleneck(_Block):
  """1x1 -> 3x3 -> 1x1 (x4) bottleneck block, stride on the 3x3 (ResNet v1.5)."""

  @nn.compact
  def __call__(self, x):
    y = nn.relu(self.norm()(self.conv(self.filters, 1)(x)))
    y = nn.relu(self.norm()(self.conv(self.filters, 3, self.strides)(y)))
    y = self.norm(scale_init=nn.initializers.zeros)(
        self.conv(self.filters * 4, 1)(y))
    if x.shape[-1] != self.filters * 4 or self.strides != 1:
      x = self.norm()(self.conv(self.filters * 4, 1, self.strides)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet-18/34/50 returning the globally pooled features h.

  `cifar_stem`: 3x3 stride-1 first conv and no max-pool (small images);
  otherwise the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool).
  Stage i has `width * 2**i` channels unless `stage_widths` lists them (a
  wider last stage widens h, the representation, at little cost on the
  small maps where it runs).
  `torch_padding` (imported weights): every k x k convolution pads k // 2
  zeros on each side, as torchvision's ResNets do, instead of 'SAME';
  `stem_padding` >= 0 overrides the first convolution's (solo-learn's CIFAR
  stem: 3x3, stride 1, padding 2).
  """
  depth: str = "resnet18"
  width: int = 64
  cifar_stem: bool = True
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  stage_widths: Sequence[int] = ()
  expand_width: int = 0
  torch_padding: bool = False
  stem_padding: int = -1

  @nn.compact
  def __call__(self, x, train: bool = True):
    def conv(features, kernel_size=3, strides=1, **kw):
      pad = kernel_size // 2 if self.torch_padding else -1
      return Conv(features, kernel_size, strides, dtype=self.dtype,
                  padding=kw.pop("padding", pad), **kw)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             dtype=self.dtype)
    x = x.astype(self.dtype)
    stem = {} if self.stem_padding < 0 else {"padding": self.stem_padding}
    if self.cifar_stem:
      x = conv(self.width, 3, name="stem_conv", **stem)(x)
    else:
      x = conv(self.width, 7, 2, name="stem_conv", **stem)(x)
    x = nn.relu(norm(name="stem_bn")(x))
    if not self.cifar_stem:
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    block = Bottleneck if BOTTLENECK[self.depth] else BasicBlock
    for i, n_blocks in enumerate(STAGE_SIZES[self.depth]):
      for j in range(n_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        filters = (self.stage_widths[i] if self.stage_widths
                   else self.width * 2**i)
        x = block(filters, strides, conv=conv, norm=norm,
                  name=f"stage{i + 1}_block{j + 1}")(x)
    if self.expand_width:  # 1x1 conv-BN-ReLU widening h before the pool
      x = nn.relu(norm(name="expand_bn")(
          conv(self.expand_width, 1, name="expand_conv")(x)))
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


class Projector(nn.Module):
  """(Linear-BN-ReLU) x (len(dims)-1) followed by a final Linear (and, with
  `last_bn`, a BatchNorm without scale and bias, as MoCo v3's and SimSiam's
  projectors end)."""
  dims: Sequence[int] = (512, 512, 512)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  last_bn: bool = False

  @nn.compact
  def __call__(self, h, train: bool = True):
    x = h
    for i, d in enumerate(self.dims[:-1]):
      x = nn.Dense(d, dtype=self.dtype, name=f"dense{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    x = nn.Dense(self.dims[-1], dtype=self.dtype,
                 name=f"dense{len(self.dims) - 1}")(x)
    if self.last_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       use_scale=False, use_bias=False, dtype=self.dtype,
                       name=f"bn{len(self.dims) - 1}")(x)
    return x.astype(jnp.float32)


class BagSSLModel(nn.Module):
  """Backbone f and projector g: returns (h, z) for a batch of patches.

  With `predictor_hidden` > 0 (methods with a predictor: BYOL, MoCo v3) it
  also owns a predictor q (Linear-BN-ReLU-Linear back to the projector
  width), applied by `predict`. `projector_last_bn` ends the projector with
  a BatchNorm (no scale, no bias).
  """
  depth: str = "resnet18"
  width: int = 64
  cifar_stem: bool = True
  projector_dims: Sequence[int] = (512, 512, 512)
  predictor_hidden: int = 0
  dtype: Any = jnp.float32
  stage_widths: Sequence[int] = ()
  expand_width: int = 0
  projector_last_bn: bool = False
  torch_padding: bool = False
  stem_padding: int = -1

  def setup(self):
    self.backbone = ResNet(self.depth, self.width, self.cifar_stem,
                           dtype=self.dtype,
                           stage_widths=tuple(self.stage_widths),
                           expand_width=self.expand_width,
                           torch_padding=self.torch_padding,
                           stem_padding=self.stem_padding)
    if self.projector_dims:  # () (a checkpoint without one): z = h
      self.projector = Projector(tuple(self.projector_dims), dtype=self.dtype,
                                 last_bn=self.projector_last_bn)
    if self.predictor_hidden:
      self.predictor = Projector((self.predictor_hidden,
                                  self.projector_dims[-1]), dtype=self.dtype)

  def __call__(self, x, train: bool = True):
    h = self.backbone(x, train)
    return h, self.projector(h, train) if self.projector_dims else h

  def predict(self, z, train: bool = True):
    """The predictor q(z) on the online projections."""
    return self.predictor(z, train)

  def init_all(self, x, train: bool = True):
    """Touches every submodule (use as `init(..., method="init_all")`)."""
    h, z = self(x, train)
    if self.predictor_hidden:
      self.predict(z, train)
    return h, z

  def embed(self, x):
    """Representation h only (eval; BatchNorm uses running statistics)."""
    return self.backbone(x, train=False)
