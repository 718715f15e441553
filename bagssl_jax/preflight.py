"""Checks of config and data that run before anything is compiled or written.

`check_inputs` raises `ConfigError` / `DataError` with one line naming the
field or path: unknown method/model/optimizer (before the data is touched),
a missing or empty dataset, images that cannot be decoded (the first record
is read), patch size vs image size, batch vs devices and processes, and, when
the run will evaluate, a test split without labels.
"""
from __future__ import annotations

import math

from absl import logging

from bagssl_jax import config as config_lib
from bagssl_jax.data import load_source, sources


def check_inputs(config, data_parallel, process_count):
  """Returns (train source, image shape) once config and data check out."""
  config_lib.validate(config)  # config-only checks: no data read yet
  source = load_source(config.data, config.data.train_split)
  if len(source) == 0:
    raise sources.DataError(f"config.data.train_split "
                            f"'{config.data.train_split}' of "
                            f"{config.data.name} is empty")
  image_shape = sources.image_shape(source, config.data)
  config_lib.validate(config, image_shape, data_parallel, process_count)
  source[0]  # pylint: disable=pointless-statement  (decodes: DataError)
  if config.run_eval:
    _check_labels(source, config, config.data.train_split)
    test = load_source(config.data, config.data.test_split)
    if len(test) == 0:
      raise sources.DataError(f"config.data.test_split "
                              f"'{config.data.test_split}' of "
                              f"{config.data.name} is empty")
    _check_labels(test, config, config.data.test_split)
  return source, image_shape


def _check_labels(source, config, split):
  if not getattr(source, "num_classes", None):
    raise sources.no_labels_error(
        source, split, config.data.name,
        " (set config.run_eval=False to train only)")


def heldout_source(config, data_parallel, process_count):
  """(test source, images) for the held-out loss: eval.heldout_images, or
  fewer when the test split is smaller (a multiple of the devices and
  processes); (None, 0) when there is no usable test split and the run does
  not evaluate (a warning, not an error)."""
  step = math.lcm(data_parallel, process_count)
  try:
    source = load_source(config.data, config.data.test_split)
  except sources.DataError as e:
    if config.run_eval:
      raise
    logging.warning("no held-out loss: %s", e)
    return None, 0
  n = min(config.eval.heldout_images, len(source)) // step * step
  if n < config.eval.heldout_images:
    logging.warning("held-out loss on %d images (config.eval.heldout_images="
                    "%d; test split of %d images, %d devices)", n,
                    config.eval.heldout_images, len(source), data_parallel)
  return (source, n) if n else (None, 0)
