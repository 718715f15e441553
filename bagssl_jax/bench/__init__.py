"""Benchmarks and accelerator tools, apart from the product code.

  __main__.py         python -m bagssl_jax.bench (sections.py: what it times)
  gpu.py              the GPU section's step timing
  torch_reference.py  the reference CPU workload in PyTorch (not a dependency)
  memory.py           python -m bagssl_jax.memory: compiled memory per device
"""
