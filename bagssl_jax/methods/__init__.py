"""The method registry: `config.method` -> its `Method` (methods/base.py).

Each module below declares `METHOD` (or `METHODS`, a family); adding a method
is a new module and its line here.
"""
from __future__ import annotations

import importlib

from bagssl_jax.methods.base import Method

_MODULES = (
    "vicreg",
    "simclr",
    "spectral",
    "barlow_twins",
    "tcr",
    "byol",
    "dino",  # dino, selfpatch
    "mocov3",
)


def _load():
  registry = {}
  for name in _MODULES:
    module = importlib.import_module(f"bagssl_jax.methods.{name}")
    for method in getattr(module, "METHODS", None) or (module.METHOD,):
      registry[method.name] = method
  return registry


METHODS: dict[str, Method] = _load()


def get(name: str) -> Method:
  """The registered method `name`; KeyError naming the choices otherwise."""
  if name not in METHODS:
    raise KeyError(f"unknown method '{name}' (choose from "
                   f"{', '.join(sorted(METHODS))})")
  return METHODS[name]


def names(backbone: str | None = None) -> tuple:
  """Registered method names, those of one backbone kind if given."""
  return tuple(n for n, m in METHODS.items()
               if backbone is None or m.backbone == backbone)
