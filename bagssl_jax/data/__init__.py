"""Input: the host pipeline and the on-device views.

  sources.py    random-access image sources (idx files, TFDS, image folders)
  patches.py    fixed-scale patch positions and extraction, RRC boxes
  pipeline.py   the grain train pipeline and the eval batches
  augment.py    on-device resize, flip, colour jitter, normalisation
  multicrop.py  DINO's multi-crop views on the device
"""
from bagssl_jax.data.pipeline import eval_batches, make_train_iterator
from bagssl_jax.data.sources import DataError, load_source

__all__ = ["DataError", "eval_batches", "load_source", "make_train_iterator"]
