"""The quiet log of the binaries: INFO lines of orbax, etils, grain, gcsfs and
JAX internals are dropped (warnings and errors stay)."""
from __future__ import annotations

import logging as logging_std

from absl import logging

_NOISY = ("orbax", "etils", "grain", "jax/_src", "gcsfs", "fsspec")


class QuietLibraries(logging_std.Filter):
  """Drops INFO chatter of orbax/etils/absl internals from the run's log."""

  def filter(self, record):
    return record.levelno >= logging_std.WARNING or not any(
        s in record.pathname for s in _NOISY)


def install():
  """Adds the filter to absl's handler (once)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, QuietLibraries) for f in handler.filters):
    handler.addFilter(QuietLibraries())


def standalone():
  """For binaries not started by absl.app (argparse): absl's log to stderr at
  INFO (training's and eval's progress lines), quiet as above."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # defaults; no "before flag parsing" notice
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  install()
