"""Per-device memory and collective bytes of a config's train step.

  python -m bagssl_jax.memory --config=configs/imagenet_vicreg.py --devices=8

The analysis itself (flag-free, importable) is `bench/memory.py`; see its
docstring for what is measured and how.
"""
import json
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from bagssl_jax import paths
from bagssl_jax.bench import memory
from bagssl_jax.models import resnet

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                lock_config=True)
flags.DEFINE_integer("devices", 0, "Analyse on this many fake CPU devices "
                     "(0: the machine's devices).")
flags.DEFINE_list("layouts", ["replicated", "fsdp"], "Parameter layouts.")
flags.DEFINE_bool("cpu_convs", False, "Keep the ResNet Conv's CPU-only lowerings.")
flags.DEFINE_string("json", None, "Also write the results to this file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.devices:  # before anything touches a backend
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", FLAGS.devices)
  resnet.CPU_LOWERINGS = FLAGS.cpu_convs
  config = FLAGS.config
  bad = [l for l in FLAGS.layouts if l not in memory.LAYOUT_MESH]
  if bad:
    print(f"error: --layouts: unknown {bad} (choose from replicated, fsdp)",
          file=sys.stderr)
    sys.exit(2)
  rows = []
  for layout in FLAGS.layouts:
    rows.append(memory.analyze(config, layout))
    print(json.dumps(rows[-1]), flush=True)
  print(f"per-device bytes of the train step, {len(jax.devices())} "
        f"{jax.devices()[0].platform} devices, dtype {config.dtype}, global "
        f"batch {config.batch_size} x {config.num_patches} patches:")
  print(memory.format_table(rows))
  for r in rows:
    kinds = ", ".join(f"{k} {v / 1e9:.3f} GB" for k, v in sorted(
        r["collective_bytes"].items()))
    print(f"{r['layout']}: collectives per device per step: {kinds or 'none'}"
          f"; the loss's and model's own (all but gradients and FSDP "
          f"parameter gathers): "
          f"{r['loss_collective_bytes'] / 1e9:.3f} GB")
  if FLAGS.json:
    paths.write_text(FLAGS.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
