"""bagssl_jax: BagSSL (bag of fixed-scale patch embeddings) in JAX/Flax.

The core is flat (train, steps, optim, sharding, checkpoints, ...); the
extension points are packages: methods/ (the method registry), models/,
data/, evaluation/, config/ (defaults, checks, presets); bench/ holds the
benchmarks. README.md is the manual, WORKSPACE.md the map.
"""
