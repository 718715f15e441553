"""ResNet/projector shapes and the small-map convolution lowering."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bagssl_jax import models


@pytest.mark.parametrize("hw,stride,k", [(2, 1, 3), (4, 2, 3), (3, 1, 3),
                                         (4, 2, 1), (5, 2, 3)])
def test_dense_small_map_conv_equals_lax_conv(hw, stride, k):
  x = jax.random.normal(jax.random.PRNGKey(0), (3, hw, hw, 5))
  conv = models.Conv(7, k, stride, dense_max_outputs=9)
  params = conv.init(jax.random.PRNGKey(1), x)
  ref = lax.conv_general_dilated(x, params["params"]["kernel"],
                                 (stride, stride), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
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
