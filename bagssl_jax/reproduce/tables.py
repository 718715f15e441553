"""Which runs make each table: config, variant, protocols, eval overrides.

A run is (row, column group): `patch` runs train on fixed-scale patches and
are evaluated on central / k patches; `rrc` runs are the multi-scale
RandomResizedCrop baseline evaluated on central / the same k crops. fig3b's
rows are patch sizes of BagSSL VICReg on ImageNet (sizes this repository's
choice: the text names only 32) plus the baseline. Tables 4 and 5 train
nothing: each row is a published checkpoint (`Checkpoint`: layout,
architecture, the file name the harness looks for, where it is published)
evaluated under configs/eval/table{4,5}.py.
"""
from __future__ import annotations

import dataclasses

PAPER_METHODS = ("vicreg", "simclr", "byol", "tcr")
FIG3B_PATCHES = (16, 32, 64, 96, 128)


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # subdirectory of the table's workdir
  row: str  # method (or patch size)
  group: str  # "patch" | "rrc"
  config: str  # configs/<file>.py
  variant: str  # the config's variants, comma-separated
  checkpoint: "Checkpoint | None" = None  # Tables 4-5: the file evaluated

  @property
  def config_arg(self):
    return f"configs/{self.config}.py" + (f":{self.variant}" if self.variant
                                          else "")


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  runs: tuple
  columns: dict  # group -> protocols, in display order
  # Each run evaluates its group's columns plus these (16_patches on the
  # baseline gives its convergence cosine, Fig. 3a).
  extra: dict = dataclasses.field(
      default_factory=lambda: {"rrc": ("16_patches",)})
  # Settings of the table's numbers, (field, value) pairs: eval limits and
  # schedule (not applied under :runlocal).
  limits: tuple = (("eval.max_test_images", 0),
                   ("eval.subset_max_test_images", 0),
                   ("eval.subset_max_train_images", 0))
  note: str = ""
  metrics: tuple = ("linear",)  # shown per protocol, in this order
  titles: dict = dataclasses.field(default_factory=lambda: {
      "patch": "BagSSL (fixed-scale patches)",
      "rrc": "multi-scale baseline (RandomResizedCrop)"})

  @property
  def external(self):
    """Whether the rows are published checkpoints (nothing trained)."""
    return any(r.checkpoint for r in self.runs)

  def protocols(self, run):
    return self.columns[run.group] + self.extra.get(run.group, ())


def _protocols(ks, kind):
  return tuple(f"{k}_{kind}" + ("" if k == 1 else
                                "es" if kind == "patch" else "s")
               for k in ks)


def _paper_table(name, title, dataset, ks, methods):
  patch = ("central",) + _protocols(ks, "patch")
  crops = ("central",) + _protocols(ks, "crop")
  runs = []
  for m in methods:
    runs.append(Run(f"{m}_patch", m, "patch", f"{dataset}_{m}", ""))
    runs.append(Run(f"{m}_rrc", m, "rrc", f"{dataset}_{m}", "rrc"))
  return Table(name, title, tuple(runs), {"patch": patch, "rrc": crops})


def _fashion_mnist(methods):
  """The analog: 14-px patches upsampled to 28 vs RandomResizedCrop(0.08, 1)
  at 28, 2 epochs each (a 28-px step costs ~10x the default's 14-px one on
  XLA:CPU). central / 1 / 16 on all 10,000 test images, probes and kNN on
  the first 10,000 train images (one pass, so the convergence cosine comes
  with it); 256 on the first 1,000 test and 1,000 train images (256 28-px
  inputs per image cost ~40 minutes per 10,000 images here)."""
  ks = (1, 16, 256)
  patch = ("central",) + _protocols(ks, "patch")
  crops = ("central",) + _protocols(ks, "crop")
  runs = []
  for m in methods:
    runs.append(Run(f"{m}_patch", m, "patch", f"fashion_mnist_{m}",
                    "input=28"))
    runs.append(Run(f"{m}_rrc", m, "rrc", f"fashion_mnist_{m}", "rrc"))
  return Table(
      "fashion_mnist", "Fashion-MNIST analog of Tables 1-2", tuple(runs),
      {"patch": patch, "rrc": crops},
      limits=(("num_epochs", 2), ("eval.max_test_images", 0),
              ("eval.max_train_images", 10000), ("eval.subset_protocols", ()),
              ("eval.protocol_limits", (("256_patches", 1000, 1000),
                                        ("256_crops", 1000, 1000)))),
      note="2 epochs per run. central, 1 and 16: all 10,000 test images, "
      "probes and kNN fit on the first 10,000 train images; 256: the first "
      "1,000 test images (binomial standard error ~1.2 points at 85%), "
      "probes on the first 1,000 train images.")


def _fig3b(patch_sizes):
  runs = [Run(f"vicreg_patch{p}", str(p), "patch", "imagenet_vicreg",
              f"patch={p}") for p in patch_sizes]
  runs.append(Run("vicreg_rrc", "rrc", "rrc", "imagenet_vicreg", "rrc"))
  return Table("fig3b", "Fig. 3b: ImageNet, BagSSL VICReg per patch size",
               tuple(runs), {"patch": ("central", "1_patch", "16_patches"),
                             "rrc": ("central", "1_crop", "16_crops")})


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  layout: str  # importers.LAYOUTS
  arch: str
  file: str  # the name the harness looks for in --checkpoints
  published: str  # where it is published ("": no public file known)


_SOLO = ("https://github.com/vturrisi/solo-learn model zoo, zoo/cifar10.sh: "
         "the .ckpt of its '{}' folder (CIFAR-10 ResNet-18)")
TABLE4_CHECKPOINTS = {
    "simclr": Checkpoint(
        "torchvision", "resnet50", "resnet50-1x.pth",
        "https://github.com/google-research/simclr (SimCLR v1 ResNet-50 1x, "
        "TensorFlow); torchvision keys: https://github.com/tonylins/"
        "simclr-converter writes resnet50-1x.pth"),
    "tcr": Checkpoint("torchvision", "resnet50", "tcr_resnet50.pth", ""),
    "vicreg": Checkpoint(
        "torchvision", "resnet50", "resnet50.pth",
        "https://dl.fbaipublicfiles.com/vicreg/resnet50.pth "
        "(facebookresearch/vicreg, ResNet-50 'backbone only')"),
    "byol": Checkpoint(
        "torchvision", "resnet50", "pretrain_res50x1.pth.tar",
        "https://storage.googleapis.com/deepmind-byol/checkpoints/"
        "pretrain_res50x1.pkl (deepmind-research/byol, Haiku); torchvision "
        "keys: https://github.com/chigur/byol-convert writes "
        "pretrain_res50x1.pth.tar"),
}
TABLE5_CHECKPOINTS = {
    m: Checkpoint("solo-learn", "resnet18", f"{m}_cifar10.ckpt",
                  _SOLO.format(m)) for m in ("simclr", "vicreg", "byol")}


def _published(name, title, preset, checkpoints, methods, **kw):
  runs = tuple(Run(m, m, "rrc", preset, "", checkpoints[m])
               for m in (methods or checkpoints) if m in checkpoints)
  unknown = [m for m in methods or () if m not in checkpoints]
  if unknown:
    raise ValueError(f"{name} has no row '{unknown[0]}' (choose from "
                     f"{', '.join(checkpoints)})")
  return Table(name, title, runs, limits=(), extra={},
               titles={"rrc": "the published checkpoint (multi-scale "
                       "RandomResizedCrop pretraining)"}, **kw)


def _table4(methods):
  return _published(
      "table4", "Table 4: ImageNet, published ResNet-50s, aggregated crops",
      "eval/table4", TABLE4_CHECKPOINTS, methods,
      columns={"rrc": ("central", "1_crop", "16_crops", "48_crops")},
      note="crops: RandomResizedCrop(0.08, 1) of the 256-px image, each "
      "resized to 224 (configs/eval/table4.py); linear probe on all of "
      "ImageNet")


def _table5(methods):
  return _published(
      "table5", "Table 5: CIFAR-10, solo-learn ResNet-18s, local aggregation",
      "eval/table5", TABLE5_CHECKPOINTS, methods,
      columns={"rrc": ("central", "all_patches", "local_aggregation")},
      metrics=("knn", "linear"),
      note="all_patches: the mean h of the 25 16-px patches (stride 4); "
      "local_aggregation: their means over a 2x2 grid, concatenated "
      "(configs/eval/table5.py); kNN k=20")


def get(name, methods=None, patch_sizes=None):
  """The Table `name` (ValueError naming the choices)."""
  trained = tuple(methods or PAPER_METHODS)
  builders = {
      "table4": lambda: _table4(methods),
      "table5": lambda: _table5(methods),
      "table1": lambda: _paper_table("table1", "Table 1: CIFAR-10", "cifar10",
                                     (1, 16, 256), trained),
      "table2": lambda: _paper_table("table2", "Table 2: CIFAR-100",
                                     "cifar100", (1, 16, 256), trained),
      "table3": lambda: _paper_table("table3", "Table 3: ImageNet-100",
                                     "imagenet100", (1, 16, 48), trained),
      "fig3b": lambda: _fig3b(tuple(patch_sizes or FIG3B_PATCHES)),
      "fashion_mnist": lambda: _fashion_mnist(trained),
  }
  if name not in builders:
    raise ValueError(f"unknown table '{name}' (choose from "
                     f"{', '.join(builders)})")
  return builders[name]()


NAMES = ("table1", "table2", "table3", "table4", "table5", "fig3b",
         "fashion_mnist")
