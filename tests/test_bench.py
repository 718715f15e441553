"""The benchmark's train workload is the reference CPU workload; the ViT section runs.

Its speed is compared with PyTorch's (bagssl_jax/bench/torch_reference.py), so the
JAX model must stay that architecture whatever the Fashion-MNIST preset does
(e.g. `model.expand_width`). Timings themselves live in the benchmark.
"""
import jax
import numpy as np

from bagssl_jax import models
from bagssl_jax.bench import sections as bench


def _spec_param_count():
  """ResNet-18 CIFAR stem, widths 16/32/64/128 on 1 channel, BN (scale and
  bias), projector Linear(128,512)-BN-ReLU-Linear(512,512)-BN-ReLU-
  Linear(512,512) with biases: counted from the spec, as PyTorch does."""
  conv = lambda cin, cout, k: cin * cout * k * k
  bn = lambda c: 2 * c
  n, cin = conv(1, 16, 3) + bn(16), 16
  for i, w in enumerate((16, 32, 64, 128)):
    for j in range(2):
      stride = 2 if i > 0 and j == 0 else 1
      n += conv(cin, w, 3) + bn(w) + conv(w, w, 3) + bn(w)
      if stride != 1 or cin != w:
        n += conv(cin, w, 1) + bn(w)
      cin = w
  n += (128 * 512 + 512) + bn(512) + (512 * 512 + 512) + bn(512)
  n += 512 * 512 + 512
  return n


def test_workload_is_the_reference_architecture():
  config = bench.workload_config()
  model = models.make_model(config)
  x = np.zeros((4, config.patch_size, config.patch_size, 1), np.float32)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  count = sum(int(np.prod(p.shape))
              for p in jax.tree_util.tree_leaves(variables["params"]))
  assert count == _spec_param_count()
  h, z = jax.eval_shape(
      lambda v: model.apply(v, x, train=False), variables)
  assert h.shape == (4, 128) and z.shape == (4, 512)
  assert (config.batch_size, config.num_patches, config.patch_size) == (256, 2, 14)
  assert config.optimizer.name == "sgd" and config.method == "vicreg"


def test_vit_section_runs_each_case():
  """The `vit` section times real DINO / SelfPatch steps (here the runlocal
  ViT, one repeat)."""
  out = bench.bench_vit(1, arg="runlocal")
  assert set(out) == {f"vit_{c}_images_per_s" for c in bench.VIT_CASES}
  assert all(np.isfinite(v) and v > 0 for v in out.values())


def test_train_section_runs_both_steps_on_one_state():
  """bench_train times the model step and then the full step on the state the
  first one left (donated buffers must not be reused)."""
  config = bench.workload_config()
  config.batch_size, config.model.width = 8, 8
  out = bench.bench_train(1, config)
  assert out["train_patches_per_s"] > 0
  assert out["train_full_step_patches_per_s"] > 0
