"""The benchmark's train workload is the reference CPU workload; the ViT section runs.

Its speed is compared with PyTorch's (bagssl_jax/bench/torch_reference.py), so the
JAX model must stay that architecture whatever the Fashion-MNIST preset does
(e.g. `model.expand_width`). Timings themselves live in the benchmark.
"""
import subprocess
import sys

import jax
import numpy as np

from bagssl_jax import models
from bagssl_jax.bench import sections as bench
from tests.conftest import ROOT


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


def test_gpu_peak_table_matches_whole_device_kinds():
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  expected = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0,
              "NVIDIA H100 NVL": 835.0, "NVIDIA H200": 989.4,
              "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA A100 80GB PCIe": 312.0,
              "NVIDIA L40S": 362.1, "NVIDIA L4": 121.0, "TPU v4": 275.0,
              "TPU v5 lite": 197.0, "TPU v5p": 459.0, "TPU v6 lite": 918.0,
              "NVIDIA L40": None, "NVIDIA GeForce RTX 4090": None, "cpu": None}
  for kind, tflops in expected.items():
    peak = gpu.peak_flops(kind)
    assert (peak and round(peak / 1e12, 1)) == tflops, kind


def test_model_flops_of_a_small_model_match_an_analytic_count():
  """Lowered cost analysis of an MLP's gradient and of a convolution against
  2 x multiply-adds counted by hand (elementwise ops are a rounding error)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  b, i, h, o = 64, 256, 512, 128
  w1, w2 = jnp.ones((i, h)), jnp.ones((h, o))
  x = jnp.ones((b, i))

  def loss(ws, x):
    return jnp.sum(jax.nn.relu(x @ ws[0]) @ ws[1])

  flops = gpu.model_flops(jax.value_and_grad(loss), (w1, w2), x)
  # forward 2bih + 2bho; backward dW2 2bho, dh 2bho, dW1 2bih
  analytic = 2 * b * i * h * 2 + 2 * b * h * o * 3
  assert abs(flops - analytic) / analytic < 0.02, (flops, analytic)
  img, k = jnp.ones((8, 32, 32, 16)), jnp.ones((3, 3, 16, 32))
  conv = lambda img, k: jax.lax.conv_general_dilated(  # pylint: disable=g-long-lambda
      img, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  analytic = 2 * 8 * 30 * 30 * 32 * 16 * 9  # 30 x 30 outputs, 3 x 3 x 16 each
  flops = gpu.model_flops(conv, img, k)
  assert abs(flops - analytic) / analytic < 0.02, (flops, analytic)


def test_model_flops_recounted_on_the_host_where_the_backend_gives_none(
    monkeypatch):
  """CUDA's PJRT plugin analyses no lowered module (cost_analysis None, as
  seen on an H200): the FLOPs then come from the host CPU's lowering of the
  same computation on abstract arguments."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  real, calls = gpu.lowered_flops, []

  def first_none(fn, *args):
    calls.append([getattr(a, "sharding", None) for a in args])
    return None if len(calls) == 1 else real(fn, *args)

  monkeypatch.setattr(gpu, "lowered_flops", first_none)
  img, k = jnp.ones((8, 32, 32, 16)), jnp.ones((3, 3, 16, 32))
  conv = lambda img, k: jax.lax.conv_general_dilated(  # pylint: disable=g-long-lambda
      img, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  flops = gpu.model_flops(conv, img, k)
  assert len(calls) == 2 and all(
      isinstance(s, jax.sharding.SingleDeviceSharding) for s in calls[1])
  analytic = 2 * 8 * 30 * 30 * 32 * 16 * 9
  assert abs(flops - analytic) / analytic < 0.02, (flops, analytic)


def test_bench_entry_and_its_modules_define_each_flag_once():
  """`python -m bagssl_jax.bench --sections=gpu` imports bench/memory.py
  after the entry's flags: a flag defined twice stops the section."""
  code = ("import bagssl_jax.bench.__main__, bagssl_jax.bench.gpu, "
          "bagssl_jax.bench.memory, bagssl_jax.bench.pipeline, "
          "bagssl_jax.bench.sections")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, check=False, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_gpu_bench_times_the_real_step_on_cpu():
  """The benchmark's path (uint8 patches -> augment -> model -> loss ->
  update, model FLOPs from the lowered step) on a tiny config."""
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  from tests.conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("fashion_mnist_vicreg", "runlocal")
  out = gpu.run(repeats=1, config=config)
  assert out["gpu_images_per_s"] > 0 and out["gpu_model_tflops_per_step"] > 0
  assert out["gpu_mfu"] is None  # no peak for a CPU


def test_collective_bytes_by_kind_from_hlo_text():
  """Parsing of compiled HLO: tuple all-reduces, async starts, gradient and
  FSDP parameter traffic told apart by the parameters' sizes."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bagssl_jax.bench import memory  # pylint: disable=g-import-not-at-top
  hlo = """
  %ar = (f32[64,3]{1,0}, f32[192]{0}) all-reduce(f32[64,3]{1,0} %a, f32[192]{0} %b), channel_id=1
  %ag = bf16[4096,8192]{1,0} all-gather(bf16[512,8192]{1,0} %z), dimensions={0}
  %agp = f32[32,8]{1,0} all-gather(f32[4,8]{1,0} %w), dimensions={0}
  %rs = f32[4,8]{1,0} reduce-scatter(f32[32,8]{1,0} %g), dimensions={0}
  %ags = (f32[8]{0}, f32[64]{0}) all-gather-start(f32[8]{0} %x)"""
  params = {"w": np.zeros((192,)), "v": np.zeros((3, 64)),
            "fsdp": np.zeros((32, 8))}
  out = memory.collective_bytes(hlo, params, num_devices=8)
  assert out == {"gradient_all-reduce": 4 * (192 + 192),
                 "all-gather": 4096 * 8192 * 2 + 64 * 4,
                 "param_all-gather": 32 * 8 * 4,
                 "gradient_reduce-scatter": 4 * 8 * 4}
