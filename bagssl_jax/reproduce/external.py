"""Tables 4-5: published checkpoints found, checked and evaluated.

`locate` finds each row's file in the --checkpoints folder (its published
name, or the same stem as .safetensors / .npz / .pth / .ckpt / .pt, e.g. a
converted copy) and raises `MissingCheckpoints` (one line: the missing files
and where each is published) before anything is built; a row with no public
file that is absent is left out. `write_random` writes random-weight
checkpoints in the rows' layouts (the runlocal variant), `evaluate` runs one
through the eval binary's path (`checkpoints.load_external`, `run.evaluate`).
"""
from __future__ import annotations

import os

import numpy as np

SUFFIXES = (".safetensors", ".npz", ".pth", ".ckpt", ".pt")


class MissingCheckpoints(Exception):
  pass


def _stem(name):
  for suffix in (".tar",) + SUFFIXES:
    if name.endswith(suffix):
      name = name[:-len(suffix)]
  return name


def find(directory, checkpoint):
  """The path of `checkpoint` in `directory`, or None."""
  names = [checkpoint.file] + [_stem(checkpoint.file) + s for s in SUFFIXES]
  for name in names:
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def locate(table, directory):
  """{run name: path} of the table's rows found in `directory`; rows with
  no public file and none here are left out. MissingCheckpoints if a
  published one is absent."""
  found, missing = {}, []
  for run in table.runs:
    path = find(directory, run.checkpoint) if directory else None
    if path:
      found[run.name] = path
    elif run.checkpoint.published:
      missing.append(f"{run.checkpoint.file} ({run.row}: "
                     f"{run.checkpoint.published})")
  if missing:
    raise MissingCheckpoints(
        f"{table.name}: {len(missing)} checkpoint file"
        f"{'s' if len(missing) > 1 else ''} missing in "
        f"{directory or '(no --checkpoints=DIR given)'}: "
        + "; ".join(missing) + " (download them there, or "
        "--variant=runlocal for random weights)")
  return found


def skipped(table, found):
  """Rows left out: no public file and none in the folder."""
  return [r.row for r in table.runs if r.name not in found]


def random_state(arch, cifar_stem, width=8, seed=0):
  """A torchvision-named ResNet state dict (no fc) of random weights:
  He-initialised convolutions, BatchNorm near identity."""
  from bagssl_jax.models import resnet  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  state = {}

  def conv(name, cout, cin, k):
    state[f"{name}.weight"] = rng.normal(
        0, np.sqrt(2. / (cin * k * k)), (cout, cin, k, k))

  def bn(name, c):
    state.update({f"{name}.weight": np.ones(c), f"{name}.bias":
                  0.1 * rng.normal(size=c), f"{name}.running_mean":
                  0.1 * rng.normal(size=c), f"{name}.running_var":
                  1. + 0.1 * rng.random(c)})

  conv("conv1", width, 3, 3 if cifar_stem else 7)
  bn("bn1", width)
  bottleneck, cin = resnet.BOTTLENECK[arch], width
  for i, n in enumerate(resnet.STAGE_SIZES[arch]):
    planes = width * 2**i
    out = planes * (4 if bottleneck else 1)
    for j in range(n):
      b = f"layer{i + 1}.{j}"
      shapes = ([(planes, cin, 1), (planes, planes, 3), (out, planes, 1)]
                if bottleneck else [(planes, cin, 3), (planes, planes, 3)])
      for c, (co, ci, k) in enumerate(shapes):
        conv(f"{b}.conv{c + 1}", co, ci, k)
        bn(f"{b}.bn{c + 1}", co)
      if j == 0 and cin != out or j == 0 and i > 0:
        conv(f"{b}.downsample.0", out, cin, 1)
        bn(f"{b}.downsample.1", out)
      cin = out
  return {k: v.astype(np.float32) for k, v in state.items()}


def write_random(table, directory, width=8):
  """Writes a random-weight checkpoint for every row whose file is not in
  `directory` (<stem>.safetensors, or .npz without safetensors)."""
  os.makedirs(directory, exist_ok=True)
  for k, run in enumerate(table.runs):
    c = run.checkpoint
    if find(directory, c):
      continue
    state = random_state(c.arch, c.layout == "solo-learn", width, seed=k)
    if c.layout == "solo-learn":
      state = {f"backbone.{n}": v for n, v in state.items()}
    path = os.path.join(directory, _stem(c.file))
    try:
      from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
      save_file(state, path + ".safetensors")
    except ImportError:
      np.savez(path + ".npz", **state)


def evaluate(config, run_dir, path, checkpoint):
  """Evaluates the checkpoint at `path` under `config` (its eval preset);
  results in run_dir/eval/, as `python -m bagssl_jax.eval --external`."""
  import jax  # pylint: disable=g-import-not-at-top
  from bagssl_jax import checkpoints, sharding  # pylint: disable=g-import-not-at-top
  from bagssl_jax.evaluation import run  # pylint: disable=g-import-not-at-top
  m = checkpoints.load_external(path, checkpoint.layout, checkpoint.arch,
                                config=config)
  prepared = run.prepare(m.config)  # bad data: before anything compiles
  mesh = sharding.make_mesh(m.config.mesh)
  variables = jax.device_put(m.variables, sharding.replicated(mesh))
  run.evaluate(m.model, variables, m.config, mesh, run_dir, None, prepared)
