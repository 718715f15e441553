"""Prepare a dataset once: `python -m bagssl_jax.prepare --config=CONFIG
--out=DIR [--config.<field>=...] [--workers=N] [--format=raw]
[--shard_index=h --num_shards=H]`.

Reads the config's dataset (train and test splits), converts, resizes and
centre-crops each image to data.image_size once, and writes ArrayRecord
shards plus metadata.json to DIR (see bagssl_jax/data/prepared.py). Train,
eval and the eval binary then read it with `--config.data.name=prepared
--config.data.path=DIR`. Run it again to continue a killed prepare.
"""
from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from bagssl_jax import config as config_lib
from bagssl_jax.config import ConfigError
from bagssl_jax.data import DataError, prepared

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                lock_config=True)
flags.DEFINE_string("out", None, "Output folder (local path or gs://...).")
flags.DEFINE_enum("format", prepared.DEFAULT_FORMAT, prepared.FORMATS,
                  "Stored image format: raw uint8 (no decode when read) or "
                  "re-encoded png / jpeg / webp (smaller on disk).")
flags.DEFINE_integer("workers", 1, "Processes writing shards in parallel.")
flags.DEFINE_integer("shard_index", 0, "This host's share: shards s with "
                     "s % num_shards == shard_index.")
flags.DEFINE_integer("num_shards", 1, "Hosts preparing in parallel.")
flags.DEFINE_integer("images_per_shard", 1024, "Images per ArrayRecord file.")
flags.DEFINE_list("splits", None, "Splits to write (default: the config's "
                  "data.train_split and data.test_split).")
flags.mark_flags_as_required(["config", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = config_lib.loaded_config_or_exit(FLAGS)
  data = config.data
  if data.name == "prepared":
    print("error: config.data.name is already 'prepared': give the source "
          "dataset's config", file=sys.stderr)
    sys.exit(2)
  splits = FLAGS.splits or list(dict.fromkeys(
      (data.train_split, data.test_split)))
  try:
    prepared.prepare(data, FLAGS.out, splits, FLAGS.format, FLAGS.workers,
                     FLAGS.shard_index, FLAGS.num_shards,
                     FLAGS.images_per_shard,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
  except (ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"prepared {FLAGS.out}: read it with --config.data.name=prepared "
        f"--config.data.path={FLAGS.out}", file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(
      "unknown field or wrong type?"))
