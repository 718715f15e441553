"""The benchmark sections (see bagssl_jax/bench/__main__.py for each)."""
from __future__ import annotations

import resource
import statistics
import time


def _median_rate(fn, units, repeats):
  """Median of `units / seconds` over `repeats` calls of fn()."""
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    rates.append(units / (time.perf_counter() - t0))
  return statistics.median(rates)


def _step_rate(fn, state, batch, units_per_step, repeats, warmup=3, k=10):
  """Compiles `fn(state, batch) -> (state, out)` (state donated), runs
  `warmup` steps, then times `repeats` blocks of k steps. Returns (state,
  compile seconds, median units per second)."""
  import jax  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  holder = [state]
  def run(steps=k):
    s = holder[0]
    for _ in range(steps):
      s, r = compiled(s, batch)
    jax.block_until_ready(r)
    holder[0] = s
  run(warmup)
  rate = _median_rate(run, k * units_per_step, repeats)
  return holder[0], compile_s, rate  # holder[0]: the state after the timing


def _peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fm_config(**overrides):
  from bagssl_jax.config import presets  # pylint: disable=g-import-not-at-top
  config = presets.build("fashion_mnist", "vicreg")
  for k, v in overrides.items():
    config[k] = v
  return config


# ------------------------------------------------------------- pipeline ---
def bench_pipeline(repeats):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data import load_source, make_train_iterator, sources
  out = {}
  config = _fm_config()
  config.data.read_threads = 1
  cases = {"fashion_mnist": load_source(config.data, "train"),
           "cifar_shaped": sources.ArraySource(
               np.random.default_rng(0).integers(0, 256, (50_000, 32, 32, 3),
                                                 dtype=np.uint8),
               np.zeros((50_000,), np.int32), 10)}
  for name, source in cases.items():
    config.data.channels = source.image_shape[-1]
    it = make_train_iterator(config, source)
    for _ in range(20):  # warm up threads and prefetch
      next(it)
    n_batches = 100
    patches = n_batches * config.batch_size * config.num_patches
    def run():
      for _ in range(n_batches):
        next(it)
    out[f"pipeline_{name}_patches_per_s"] = _median_rate(run, patches, repeats)
  out["pipeline_patches_per_s"] = out.pop("pipeline_fashion_mnist_patches_per_s")
  out["pipeline_read_threads"] = 1
  return out


# ---------------------------------------------------------------- train ---
def workload_config():
  """The reference CPU workload (module docstring of bench/__main__.py)."""
  config = _fm_config()
  config.model.update(depth="resnet18", width=16, cifar_stem=True,
                      stage_widths=(), expand_width=0,  # h = pooled 128 dims
                      projector_dims=(512, 512, 512))
  config.optimizer.update(name="sgd", base_lr=0.1, weight_decay=0.0,
                          momentum=0.9, warmup_epochs=0)
  config.loss.vicreg = dict(sim_coeff=25., std_coeff=25., cov_coeff=1.)
  return config


def bench_train(repeats, config=None, full_step=True):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp
  import numpy as np
  import optax
  from bagssl_jax import methods, models, optim, steps
  config = config or workload_config()
  b, n, p = config.batch_size, config.num_patches, config.patch_size
  model = models.make_model(config)
  tx, lr = optim.make_optimizer(config.optimizer, b, 1000, 100)
  state = jax.jit(steps.make_init(model, tx, config))(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  uint8_batch = {"patches": rng.integers(0, 256, (b, n, p, p, 1), np.uint8),
                 "label": np.zeros((b,), np.int32)}
  x = jnp.asarray(rng.normal(size=(b * n, p, p, 1)).astype(np.float32))

  def model_step(state, x):
    def loss_fn(params):
      (_, z), new = model.apply({"params": params,
                                 "batch_stats": state.batch_stats}, x,
                                train=True, mutable=["batch_stats"])
      loss, _ = methods.get(config.method).loss(z.reshape(b, n, -1),
                                                **config.loss[config.method])
      return loss, new["batch_stats"]
    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(g, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates),
                         batch_stats=stats, opt_state=opt_state,
                         step=state.step + 1), loss

  cases = [("train", model_step, x)]
  if full_step:
    cases.append(("train_full_step",
                  steps.make_train_step(model, tx, lr, config, 1000),
                  jax.device_put(uint8_batch)))
  out = {}
  for name, fn, batch in cases:
    state, out[f"{name}_compile_s"], out[f"{name}_patches_per_s"] = (
        _step_rate(fn, state, batch, b * n, repeats))
  out["train_patches_per_step"] = b * n
  out["train_workload"] = "resnet18 w16 cifar-stem 1x14x14, proj 512^3, vicreg, sgd"
  return out


def bench_torch(repeats):
  from bagssl_jax.bench import torch_reference  # pylint: disable=g-import-not-at-top
  return torch_reference.run(repeats)


def bench_scaling(repeats):
  """Train patches/s as one factor of the workload varies (others fixed)."""
  out = {}
  for field, values in (("num_patches", (2, 4, 8)), ("batch_size", (128, 512)),
                        ("width", (8, 32))):
    for v in values:
      config = workload_config()
      if field == "width":
        config.model.width = v
      else:
        config[field] = v
      r = bench_train(max(repeats // 2, 2), config, full_step=False)
      out[f"scaling_{field}_{v}_patches_per_s"] = r["train_patches_per_s"]
  return out


# ------------------------------------------------------------------ vit ---
VIT_CASES = {"selfpatch": ("selfpatch", {}), "dino": ("dino", {}),
             "selfpatch_patch4": ("selfpatch", {"vit_patch": 4,
                                                "local_size": 12})}


def bench_vit(repeats, cases=VIT_CASES, arg=None):
  """Images/s of the DINO / SelfPatch train step (multi-crop on device)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np
  from bagssl_jax import models, optim, steps
  from bagssl_jax.config import presets
  out = {}
  for name, (method, change) in cases.items():
    config = presets.build("fashion_mnist", method, arg)
    config.model.vit_patch = change.get("vit_patch", config.model.vit_patch)
    mc = config.multicrop
    mc.local_size = change.get("local_size", mc.local_size)
    b, g, n_local = config.batch_size, mc.num_global, mc.num_local
    model = models.make_model(config)
    tx, lr = optim.make_optimizer(config.optimizer, b, 1000, 100)
    state = jax.jit(steps.make_init(model, tx, config))(jax.random.PRNGKey(0))
    boxes = np.concatenate([np.tile([[0., 0., 28., 28.]], (b, g, 1)),
                            np.tile([[4., 4., 12., 12.]], (b, n_local, 1))],
                           1).astype(np.float32)
    batch = jax.device_put({
        "image": np.random.default_rng(0).integers(0, 256, (b, 28, 28, 1),
                                                   np.uint8),
        "boxes": boxes, "label": np.zeros((b,), np.int32)})
    fn = steps.make_train_step(model, tx, lr, config, 1000)
    _, _, out[f"vit_{name}_images_per_s"] = _step_rate(
        fn, state, batch, b, repeats, warmup=2, k=4)
  return out


# ----------------------------------------------------------------- eval ---
def _features(workdir, max_images, protocol="16_patches"):
  """(train_x, train_y, test_x, test_y, num_classes, seconds per protocol)."""
  import jax  # pylint: disable=g-import-not-at-top
  from bagssl_jax import checkpoints, models, sharding
  from bagssl_jax.data import load_source, sources
  from bagssl_jax.evaluation import embedding
  if workdir:
    m = checkpoints.load(workdir)
    config, model, variables = m.config, m.model, m.variables
  else:
    config = _fm_config()
    model = models.make_model(config)
    variables = model.init(jax.random.PRNGKey(0),
                           jax.numpy.zeros(models.input_shape(config)),
                           train=False)
  config.eval.protocols = (protocol,)
  mesh = sharding.make_mesh(config.mesh)
  train_src = load_source(config.data, config.data.train_split)
  test_src = load_source(config.data, config.data.test_split)
  embedder = embedding.PassEmbedder(
      model, config, sources.image_shape(test_src, config.data), mesh)
  tr, tr_y = embedder(variables, train_src, max_images)
  t0 = time.perf_counter()
  te, te_y = embedder(variables, test_src)
  return (tr[protocol], tr_y, te[protocol], te_y, train_src.num_classes,
          time.perf_counter() - t0, len(te_y))


def bench_eval(repeats, workdir=None):
  del repeats  # one pass over the test set per protocol is already long
  out = {}
  for protocol, per_image in (("all_patches", 9), ("16_patches", 16)):
    *_, seconds, n_test = _features(workdir, 256, protocol)
    out[f"eval_{protocol}_patches_per_s"] = n_test * per_image / seconds
  out["eval_patches_per_s"] = out["eval_all_patches_patches_per_s"]
  out["eval_peak_rss_mib"] = _peak_rss_mib()
  return out


# ---------------------------------------------------------------- probe ---
def bench_probe(repeats, workdir=None):
  del repeats
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bagssl_jax.config import presets
  from bagssl_jax.evaluation import probes
  config = presets.build("fashion_mnist", "vicreg")
  tr, tr_y, te, te_y, k, *_ = _features(workdir, 0)
  ev = config.eval
  kw = dict(learning_rates=tuple(ev.probe_learning_rates),
            weight_decays=tuple(ev.probe_weight_decays), steps=ev.probe_steps,
            batch_size=ev.probe_batch_size or None, seed=ev.seed)
  probes.linear_probe(tr[:2048], tr_y[:2048], te, te_y, k, **kw)  # compile
  t0 = time.perf_counter()
  lin = probes.linear_probe(tr, tr_y, te, te_y, k, **kw)
  out = {"probe_seconds": time.perf_counter() - t0,
         "probe_accuracy": lin["accuracy"], "probe_train_images": len(tr_y)}
  probes.knn_classify(tr, tr_y, te[:64], te_y[:64], k)  # compile
  t0 = time.perf_counter()
  probes.knn_classify(tr, tr_y, te, te_y, k)
  out["knn_seconds"] = time.perf_counter() - t0
  try:
    from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
    from sklearn.preprocessing import StandardScaler
  except ImportError:
    out["sklearn"] = "not installed"
    return out
  scaler = StandardScaler().fit(tr)
  t0 = time.perf_counter()
  clf = LogisticRegression(max_iter=1000).fit(scaler.transform(tr), tr_y)
  out["sklearn_seconds"] = time.perf_counter() - t0
  out["sklearn_accuracy"] = float(np.mean(clf.predict(scaler.transform(te))
                                          == te_y))
  return out


# ------------------------------------------------------------------ gpu ---
def bench_gpu(repeats):
  import jax  # pylint: disable=g-import-not-at-top
  if jax.devices()[0].platform not in ("gpu", "tpu"):
    return {"gpu": "not measured (no GPU or TPU)"}
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  return gpu.run(repeats)


def bench_gpu_batches(repeats):
  import jax  # pylint: disable=g-import-not-at-top
  if jax.devices()[0].platform not in ("gpu", "tpu"):
    return {"gpu_batches": "not measured (no GPU or TPU)"}
  from bagssl_jax.bench import gpu  # pylint: disable=g-import-not-at-top
  return gpu.sweep(repeats)
