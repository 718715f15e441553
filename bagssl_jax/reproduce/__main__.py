"""`python -m bagssl_jax.reproduce --table=NAME --workdir=DIR [--variant=V]
[--methods=a,b] [--patch_sizes=16,32] [--checkpoints=DIR] [--dry_run]
[--config.FIELD=VALUE ...]`

Runs or resumes every run of a table (Tables 4-5: evaluates the published
checkpoints in --checkpoints), then writes DIR/NAME.md and DIR/NAME.json.
Bad arguments or configs and missing checkpoint files stop with one `error:`
line before anything runs."""
from __future__ import annotations

import argparse
import shlex
import sys

from bagssl_jax import paths
from bagssl_jax.reproduce import external, render, runner, tables


def _parser():
  p = argparse.ArgumentParser(prog="python -m bagssl_jax.reproduce",
                              description=__doc__.split("\n\n")[1])
  p.add_argument("--table", required=True, choices=tables.NAMES)
  p.add_argument("--workdir", required=True)
  p.add_argument("--variant", default="",
                 help="config variants added to every run, e.g. runlocal")
  p.add_argument("--methods", default="",
                 help="comma-separated subset of the table's methods")
  p.add_argument("--patch_sizes", default="", help="fig3b's patch sizes")
  p.add_argument("--checkpoints", default="",
                 help="table4/table5: the folder of the published checkpoint "
                 "files (runlocal: random-weight ones are written there, "
                 "default WORKDIR/random_checkpoints)")
  p.add_argument("--dry_run", action="store_true",
                 help="list the runs and whether each is finished; run none")
  return p


class _Exit(Exception):
  pass


def main(argv):
  parser = _parser()
  parser.error = lambda message: (_ for _ in ()).throw(_Exit(message))
  try:
    args, rest = parser.parse_known_args(argv)
    overrides = []
    for a in rest:
      if not a.startswith("--config.") or "=" not in a:
        raise _Exit(f"unrecognised argument {a} (use --config.FIELD=VALUE)")
      field, _, value = a[len("--config."):].partition("=")
      overrides.append((field, value))
    sizes = [int(s) for s in args.patch_sizes.split(",") if s.strip()] if (
        args.patch_sizes) else None
    table = tables.get(args.table,
                       [m for m in args.methods.split(",") if m] or None,
                       sizes)
    # Every run's config first: a bad override or variant stops here.
    configs = [(run, runner.build(table, run, args.variant, overrides))
               for run in table.runs]
    found = _checkpoints(table, args) if table.external else {}
  except (_Exit, ValueError, external.MissingCheckpoints) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if table.external:
    for row in external.skipped(table, found):
      print(f"reproduce {table.name}: row {row} left out: no public "
            "checkpoint known and none in the folder")
    configs = [(r, c) for r, c in configs if r.name in found]
  command = "python -m bagssl_jax.reproduce " + " ".join(
      shlex.quote(a) for a in argv)
  if args.dry_run:
    for k, (run, config) in enumerate(configs, 1):
      done = runner.finished(f"{args.workdir}/{run.name}",
                             config.eval.protocols)
      print(f"run {k} of {len(configs)}: {run.name}: {run.config_arg}"
            f"{''.join(f' --config.{f}={v}' for f, v in overrides)} | "
            f"protocols {','.join(config.eval.protocols)} | "
            + (f"checkpoint {found[run.name]} | " if found else "") +
            f"{'finished' if done else 'to run'}")
    return 0
  # Imported here: the dry run and argument errors need no JAX backend.
  from bagssl_jax import quiet_log, train  # pylint: disable=g-import-not-at-top
  from bagssl_jax.checkpoints import CheckpointError  # pylint: disable=g-import-not-at-top
  from bagssl_jax.config import ConfigError  # pylint: disable=g-import-not-at-top
  from bagssl_jax.data import DataError  # pylint: disable=g-import-not-at-top
  from bagssl_jax.numerics import NonFiniteError  # pylint: disable=g-import-not-at-top
  from bagssl_jax.workdir import WorkdirError  # pylint: disable=g-import-not-at-top
  quiet_log.standalone()  # the runs' eval progress and results lines
  run_fn = train.train_and_evaluate
  if table.external:
    by_dir = {paths.join(args.workdir, r.name): r for r, _ in configs}
    run_fn = lambda config, run_dir: external.evaluate(  # pylint: disable=g-long-lambda
        config, run_dir, found[by_dir[run_dir].name],
        by_dir[run_dir].checkpoint)
  try:
    runner.run_all(table, configs, args.workdir, run_fn)
  except (ConfigError, DataError, CheckpointError, WorkdirError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except NonFiniteError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  finally:
    data = render.write(table, args.workdir, command)
  print(render.markdown(data), flush=True)
  print(f"wrote {args.workdir}/{table.name}.md and .json")
  return 0


def _checkpoints(table, args):
  """{run name: checkpoint path}; under runlocal random-weight files are
  written first for the rows that have none."""
  folder = args.checkpoints
  if "runlocal" in args.variant.split(","):
    folder = folder or f"{args.workdir}/random_checkpoints"
    external.write_random(table, folder)
  return external.locate(table, folder)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
