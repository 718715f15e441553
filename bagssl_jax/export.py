"""Export a run's backbone to PyTorch: `python -m bagssl_jax.export
--workdir=W [--step=N] --layout=torchvision|solo-learn|timm --out=FILE
[--with_projector]` (FILE .safetensors, or .pth with torch; FILE.json beside
it). The code is `importers/export.py`; in a notebook
`bagssl_jax.checkpoints.load(W).export(FILE, layout=L)`.
"""
from __future__ import annotations

import sys

from absl import app, flags

from bagssl_jax import checkpoints
from bagssl_jax.importers import export
from bagssl_jax.loaded import CheckpointError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The run's workdir (local or gs://).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_enum("layout", None, export.LAYOUTS, "PyTorch layout to write.")
flags.DEFINE_string("out", None, "Output file: .safetensors or .pth.")
flags.DEFINE_bool("with_projector", False, "Also write `projector.*`.")
flags.mark_flags_as_required(["workdir", "layout", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    export.check(checkpoints.read_config(FLAGS.workdir), FLAGS.layout)  # no restore
    meta = checkpoints.load(FLAGS.workdir, FLAGS.step).export(
        FLAGS.out, FLAGS.layout, FLAGS.with_projector)
  except CheckpointError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {FLAGS.out} ({meta['keys']} tensors, {meta['layout']} "
        f"{meta['architecture']}, step {meta['step']}) and {FLAGS.out}.json",
        file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
