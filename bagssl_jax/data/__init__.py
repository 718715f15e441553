"""Host input pipeline: image sources, fixed-scale patch extraction, grain."""
from bagssl_jax.data.pipeline import eval_batches, make_train_iterator
from bagssl_jax.data.sources import DataError, load_source

__all__ = ["DataError", "eval_batches", "load_source", "make_train_iterator"]
