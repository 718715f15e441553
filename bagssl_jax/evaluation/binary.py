"""The eval binary: any checkpoint of a run, every protocol.

  python -m bagssl_jax.eval --workdir=DIR [--step=N] [--config.eval.<field>=...]
  python -m bagssl_jax.eval --external=LAYOUT:ARCH:PATH --config=configs/X.py \
      --workdir=OUT [--config.<field>=...]

The first form reads DIR/config.json and evaluates the full protocol set
(`protocols.FULL`), low-shot probes and the t-SNE map unless overridden; the
protocols of `eval.subset_protocols` (256_patches, crops, local aggregation)
use the first `eval.subset_max_{train,test}_images` images.
`--config.eval.data.name=... [.path, .image_size, .train_split, .test_split]`
evaluates on another dataset than the run trained on (transfer). A bad
config, data or checkpoint is one `error:` line, before anything compiles.

The second evaluates a checkpoint trained elsewhere (`bagssl_jax.importers`:
torchvision, solo-learn or timm layouts) under the config file's data and
eval settings (patch_size, input_size, eval.*; configs/eval/table{4,5}.py
are the paper's protocols), with the checkpoint's normalisation unless
--external_normalization says otherwise; results go to OUT/eval/.
"""
from __future__ import annotations

import sys

import jax
import ml_collections
from absl import app, flags

from bagssl_jax import checkpoints, quiet_log, sharding
from bagssl_jax import config as config_lib
from bagssl_jax.data import sources
from bagssl_jax.evaluation import protocols, run

# What the binary evaluates unless --config.eval.<field> says otherwise.
BINARY_DEFAULTS = dict(protocols=protocols.FULL, knn_extra_k=(200,),
                       low_shot=(0.01, 0.1), tsne_images=2000, figures=True)
_HINT = "only --config.eval.<field> exists here"


def binary_config(run_config, overrides):
  """The run's config with the binary's eval defaults, then the
  --config.eval.<field> overrides (a flat {"eval.field": value} dict).
  Fields missing from an older config.json take base_config's defaults."""
  config = ml_collections.ConfigDict(run_config.to_dict())
  ev = config_lib.base_config().eval
  ev.update(config.eval.to_dict())
  ev.update(BINARY_DEFAULTS)
  config.eval = ev
  for path, value in overrides.items():
    node, leaf = path.split(".")[:-1], path.split(".")[-1]
    target = config
    for key in node:
      target = target[key]
    target[leaf] = value
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  quiet_log.install()
  if flags.FLAGS.external:
    return main_external()
  workdir = flags.FLAGS.workdir
  try:
    config = binary_config(checkpoints.read_config(workdir),
                           flags.FLAGS["config"].override_values)
    prepared = run.prepare(config)  # bad config or data: before any compile
    m = checkpoints.load(workdir, flags.FLAGS.step)
    mesh = sharding.make_mesh(config.mesh)
    variables = jax.device_put(m.variables, sharding.replicated(mesh))
    run.evaluate(m.model, variables, config, mesh, workdir, m.step, prepared)
  except (checkpoints.CheckpointError, sources.DataError,
          config_lib.ConfigError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------
# Checkpoints trained elsewhere: --external=LAYOUT:ARCH:PATH --config=FILE.
# ---------------------------------------------------------------------------


def external_normalization(value, layout):
  """--external_normalization -> (mean, std) or (None, None) (the
  checkpoint's): 'checkpoint', 'unit' ([0, 1] inputs) or 'M,M,M/S,S,S'."""
  if value in ("", "checkpoint"):
    return None, None
  if value == "unit":
    return (0., 0., 0.), (1., 1., 1.)
  try:
    mean, std = (tuple(float(v) for v in part.split(","))
                 for part in value.split("/"))
  except ValueError:
    mean = std = ()
  if not mean or len(mean) != len(std) or min(std) <= 0:
    raise config_lib.ConfigError(
        f"--external_normalization={value}: use checkpoint, unit or "
        f"M,M,M/S,S,S (the {layout} default is 'checkpoint')")
  return mean, std


def main_external():
  """Evaluates an imported checkpoint under the --config file's eval."""
  from bagssl_jax import importers  # pylint: disable=g-import-not-at-top
  fl = flags.FLAGS
  config = config_lib.loaded_config_or_exit(fl, field="eval")
  try:
    layout, arch, path = importers.parse_spec(fl.external)
    mean, std = external_normalization(fl.external_normalization, layout)
    if not config.eval.get("preset"):  # a training config: the full eval
      config = binary_config(config, fl["config"].override_values)
    m = importers.load_external(path, layout, arch, config=config, mean=mean,
                                std=std)
    prepared = run.prepare(m.config)  # bad config or data: before compiles
    mesh = sharding.make_mesh(m.config.mesh)
    variables = jax.device_put(m.variables, sharding.replicated(mesh))
    run.evaluate(m.model, variables, m.config, mesh, fl.workdir, None,
                 prepared)
  except (checkpoints.CheckpointError, sources.DataError,
          config_lib.ConfigError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _define_external_flags():
  flags.DEFINE_string("external", None, "LAYOUT:ARCH:PATH of a checkpoint "
                      "trained elsewhere (torchvision, solo-learn, timm).")
  flags.DEFINE_string("external_normalization", "checkpoint",
                      "Input normalisation of --external: checkpoint (its "
                      "layout's), unit ([0, 1]) or M,M,M/S,S,S.")


def define_flags_and_run():
  """Defines the binary's flags (reading the --config.eval overrides) and
  runs `main`; a bad flag is one `error:` line."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Run directory (config.json, checkpoints/).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: newest).")
  _define_external_flags()
  if any(a.startswith("--external=") for a in sys.argv[1:]):
    config_flags.DEFINE_config_file(
        "config", None, "Config file: data, patch/input size and eval.")
    flags.mark_flags_as_required(["workdir", "config"])
    app.run(main, flags_parser=config_lib.flags_parser(
        "unknown field or wrong type?"))
    return
  try:  # config_flags already reads the overrides in sys.argv here
    config_flags.DEFINE_config_dict(
        "config",
        ml_collections.ConfigDict({"eval": config_lib.base_config().eval}),
        "Eval settings: --config.eval.<field>=value.")
  except config_lib.OVERRIDE_ERRORS as e:
    config_lib.exit_bad_override(sys.argv, e, _HINT)
  flags.mark_flag_as_required("workdir")
  app.run(main, flags_parser=config_lib.flags_parser(_HINT))
