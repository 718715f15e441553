"""Per-device memory of a config's train step (code: bench/memory.py).

  python -m bagssl_jax.memory --config=configs/imagenet_vicreg.py --devices=8
"""
from bagssl_jax.bench import memory

if __name__ == "__main__":
  memory.run()
