"""ResNet/projector shapes and the small-map convolution lowering."""
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bagssl_jax.models import resnet as models

# Compared against float64/NumPy references: full-precision matmuls on any
# backend (TF32 on GPU and bf16 passes on TPU by default).
pytestmark = pytest.mark.usefixtures("exact_matmuls")


@pytest.mark.parametrize("hw,stride,k,cin,dense", [
    (2, 1, 3, 5, 9), (4, 2, 3, 5, 9), (3, 1, 3, 5, 9), (4, 2, 1, 5, 9),
    (5, 2, 3, 5, 9),  # dense (Toeplitz) lowering
    (14, 1, 3, 1, 4), (14, 2, 3, 6, 4), (7, 2, 3, 6, 4), (7, 2, 1, 6, 4),
    (8, 2, 7, 3, 4),  # im2col lowering (stem, strided)
    (6, 1, 3, 6, 4)])  # lax.conv
def test_conv_lowerings_equal_lax_conv(hw, stride, k, cin, dense):
  x = jax.random.normal(jax.random.PRNGKey(0), (3, hw, hw, cin))
  conv = models.Conv(7, k, stride, dense_max_outputs=dense)
  params = conv.init(jax.random.PRNGKey(1), x)
  ref = lax.conv_general_dilated(x, params["params"]["kernel"],
                                 (stride, stride), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(conv.apply(params, x), ref, atol=1e-5)


@pytest.mark.parametrize("hw,stride,k,pad,dense", [
    (5, 2, 3, 1, 9), (3, 1, 3, 2, 25),  # dense (Toeplitz)
    (9, 2, 7, 3, 4), (8, 2, 1, 0, 4),  # im2col (stem; 1x1 stride 2, even side)
    (7, 1, 3, 2, 4)])  # lax.conv
def test_torch_padding_lowerings_equal_symmetric_lax_conv(hw, stride, k, pad,
                                                          dense):
  """padding=p: p zeros on each side and floor output sizes, as torch."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, hw, hw, 3 if k == 7 else 6))
  conv = models.Conv(5, k, stride, dense_max_outputs=dense, padding=pad)
  params = conv.init(jax.random.PRNGKey(1), x)
  ref = lax.conv_general_dilated(x, params["params"]["kernel"],
                                 (stride, stride), ((pad, pad), (pad, pad)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert ref.shape[1] == (hw + 2 * pad - k) // stride + 1
  np.testing.assert_allclose(conv.apply(params, x), ref, atol=1e-5)


@pytest.mark.parametrize("depth,cifar,size,feat", [
    ("resnet18", True, 14, 128), ("resnet34", True, 14, 128),
    ("resnet50", False, 64, 512)])
def test_model_outputs(depth, cifar, size, feat):
  model = models.BagSSLModel(depth=depth, width=16, cifar_stem=cifar,
                             projector_dims=(32, 32, 24))
  x = jnp.ones((2, size, size, 3))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  (h, z), _ = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["batch_stats"]), variables, x)
  assert h.shape == (2, feat) and z.shape == (2, 24)


@pytest.mark.parametrize("stage_widths,expand,feat", [
    ((), 0, 128), ((16, 32, 64, 96), 0, 96), ((), 200, 200),
    ((8, 16, 32, 40), 72, 72)])
def test_stage_widths_and_expand_set_the_width_of_h(stage_widths, expand, feat):
  model = models.BagSSLModel(depth="resnet10", width=16, cifar_stem=True,
                             projector_dims=(32, 24), stage_widths=stage_widths,
                             expand_width=expand)
  x = jnp.ones((2, 14, 14, 1))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  (h, z), _ = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["batch_stats"]), variables, x)
  assert h.shape == (2, feat) and z.shape == (2, 24)
  names = set(variables["params"]["backbone"])
  assert ("expand_conv" in names) == bool(expand)


def test_projector_last_bn_standardises_z_without_affine():
  """`projector_last_bn`: z leaves a BatchNorm without scale and bias (MoCo
  v3, SimSiam): in train mode each dimension has mean 0 and variance 1."""
  model = models.BagSSLModel(depth="resnet10", width=8, cifar_stem=True,
                             projector_dims=(32, 16), projector_last_bn=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 14, 14, 1))
  variables = model.init(jax.random.PRNGKey(1), x)
  assert "bn1" in variables["batch_stats"]["projector"]
  assert "bn1" not in variables["params"]["projector"]  # no scale, no bias
  (_, z), _ = model.apply(variables, x, mutable=["batch_stats"])
  np.testing.assert_allclose(z.mean(0), 0., atol=1e-4)
  np.testing.assert_allclose(z.var(0), 1., atol=1e-2)
  plain = models.BagSSLModel(depth="resnet10", width=8, cifar_stem=True,
                             projector_dims=(32, 16))
  assert "bn1" not in plain.init(jax.random.PRNGKey(1), x)["batch_stats"][
      "projector"]


def _eqns(jaxpr):
  for e in jaxpr.eqns:
    yield e
    for sub in jax.extend.core.jaxprs_in_params(e.params):
      yield from _eqns(sub)


def test_bf16_vit_keeps_softmax_and_dino_logits_in_f32():
  """Under dtype=bfloat16 the attention softmax runs in f32 and the DINO
  head's last layer (logits later divided by a 0.04 temperature) in f32."""
  from bagssl_jax.models import vit  # pylint: disable=g-import-not-at-top
  block = vit.Block(heads=2, dtype=jnp.bfloat16)
  x = jnp.ones((2, 5, 8), jnp.float32)
  params = block.init(jax.random.PRNGKey(0), x)
  exps = [e for e in _eqns(jax.make_jaxpr(block.apply)(params, x).jaxpr)
          if e.primitive.name == "exp"]
  assert exps and all(e.outvars[0].aval.dtype == jnp.float32 for e in exps)
  head = vit.DINOHead(hidden=16, bottleneck=8, out_dim=32, dtype=jnp.bfloat16)
  h = jnp.ones((2, 8), jnp.float32)
  hp = head.init(jax.random.PRNGKey(0), h)
  dots = [e for e in _eqns(jax.make_jaxpr(head.apply)(hp, h).jaxpr)
          if e.primitive.name == "dot_general"]
  last = dots[-1]
  assert last.outvars[0].aval.shape == (2, 32)
  assert all(v.aval.dtype == jnp.float32 for v in last.invars)
  assert head.apply(hp, h).dtype == jnp.float32
