"""Entry point: `python -m bagssl_jax.main --config=configs/X.py[:variant]
--workdir=DIR [--config.field=value ...]`."""
from __future__ import annotations

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from bagssl_jax import distributed, quiet_log, train
from bagssl_jax.checkpoints import CheckpointError
from bagssl_jax import config as config_lib
from bagssl_jax.config import ConfigError
from bagssl_jax.data import DataError
from bagssl_jax.numerics import NonFiniteError
from bagssl_jax.workdir import WorkdirError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (get_config).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs and eval go.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for multi-process JAX.")
flags.DEFINE_integer("num_processes", None, "Number of JAX processes.")
flags.DEFINE_integer("process_id", None, "This process's index.")
flags.DEFINE_enum("distributed", "auto", distributed.MODES,
                  "Multi-process without the three flags above: 'on' calls "
                  "jax.distributed.initialize() (SLURM, Open MPI, TPU-VM pod "
                  "slices), 'auto' does so where such a launch is detected.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  quiet_log.install()
  config = config_lib.loaded_config_or_exit(FLAGS)  # loads lazily, here
  try:
    how = distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address,
                                 FLAGS.num_processes, FLAGS.process_id)
  except distributed.DistributedError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  logging.info("JAX %s: process %d/%d (%s), %d local / %d global devices (%s)",
               jax.__version__, jax.process_index(), jax.process_count(), how,
               jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)
  try:
    train.train_and_evaluate(config, FLAGS.workdir)
  except (ConfigError, DataError, CheckpointError, WorkdirError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except NonFiniteError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(
      "unknown field or wrong type?"))
