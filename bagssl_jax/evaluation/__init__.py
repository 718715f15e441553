"""Evaluation by patch aggregation (the paper's protocols).

  run.py        evaluate(): the one entry (ResNet protocols, or vit.py)
  protocols.py  protocol names and passes       embedding.py  streamed means
  probes.py     optax linear probe, kNN          health.py     std, rank, t-SNE
  figures.py    WORKDIR/eval/*.png               tables.py     results.json/.md
  vit.py        ViT (DINO / SelfPatch) eval      binary.py     the eval binary
"""
