"""The eval binary (code: bagssl_jax/evaluation/binary.py).

  python -m bagssl_jax.eval --workdir=DIR [--step=N] [--config.eval.<field>=...]
"""
from bagssl_jax.evaluation import binary

if __name__ == "__main__":
  binary.define_flags_and_run()
