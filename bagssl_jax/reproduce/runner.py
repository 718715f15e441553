"""Runs or resumes the runs of a table, one after the other, in-process.

Each run lives in WORKDIR/<run name> and is an ordinary training run
(`train.train_and_evaluate`): a killed harness restarted with the same command
resumes the interrupted run from its newest checkpoint, and skips the runs
whose eval/results.json already holds every protocol they evaluate.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import pathlib
import time

from bagssl_jax import config as config_lib
from bagssl_jax import paths

_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def configs_dir():
  return _CONFIGS if _CONFIGS.is_dir() else pathlib.Path("configs")


def load(config_file, variant):
  """get_config(variant) of configs/<config_file>.py."""
  path = configs_dir() / f"{config_file}.py"
  spec = importlib.util.spec_from_file_location(
      "_cfg_" + config_file.replace("/", "_"), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant or None)


def parse_value(text, current):
  """A --config.FIELD=VALUE value: a Python literal, else the text (split at
  commas for tuple fields)."""
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if isinstance(current, tuple) and not isinstance(value, tuple):
    value = tuple(v.strip() for v in str(value).split(",") if v.strip()) if (
        isinstance(value, str)) else (value,)
  return value


def set_field(config, dotted, value):
  """config.<dotted> = value; ConfigError naming the field if it is unknown
  or of another type."""
  node, *path = config, *dotted.split(".")
  try:
    for key in path[:-1]:
      node = node[key]
    if isinstance(value, str) and not isinstance(node[path[-1]], str):
      value = parse_value(value, node[path[-1]])
    node[path[-1]] = value
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    raise config_lib.ConfigError(
        f"--config.{dotted}: cannot set it ({type(e).__name__}: {e})") from None


def build(table, run, variant="", overrides=()):
  """The config of `run`: its config file and variants (+ `variant`), the
  table's protocols and eval limits (not under runlocal), then `overrides`
  (("field", "text") pairs from the command line)."""
  variants = ",".join(v for v in (run.variant, variant) if v)
  try:
    config = load(run.config, variants)
  except ValueError as e:
    raise config_lib.ConfigError(f"{run.config_arg}: {e}") from None
  smoke = "runlocal" in variants.split(",")
  # Under runlocal the table's columns only (one eval pass per family).
  config.eval.protocols = (table.columns[run.group] if smoke else
                           table.protocols(run))
  if not smoke:
    for field, value in table.limits:
      set_field(config, field, value)
  for field, text in overrides:
    set_field(config, field, text)
  return config


def finished(run_dir, protocols):
  """Whether run_dir/eval/results.json holds every one of `protocols`."""
  try:
    results = json.loads(paths.read_text(paths.join(run_dir, "eval",
                                                    "results.json")))
  except (OSError, ValueError):
    return False
  return all(p in results for p in protocols)


def _clock(seconds):
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def run_all(table, configs, workdir, train_fn, log=print):
  """Runs every (run, config) of `configs` not finished yet, printing a
  progress line before each (run k of n, elapsed, ETA from the runs done in
  this invocation). Returns (ran, skipped) run names."""
  todo = [(r, c) for r, c in configs
          if not finished(paths.join(workdir, r.name), c.eval.protocols)]
  skipped = [r.name for r, _ in configs if r not in dict(todo)]
  n, t0, ran = len(configs), time.time(), []
  if skipped:
    log(f"reproduce {table.name}: {len(skipped)} of {n} runs finished "
        f"earlier, skipped: {', '.join(skipped)}")
  for i, (run, config) in enumerate(todo):
    k = len(skipped) + i + 1
    elapsed = time.time() - t0
    eta = (_clock(elapsed / i * (len(todo) - i)) if i else "?")
    log(f"reproduce {table.name}: run {k} of {n}: {run.name} "
        f"({run.config_arg}) | elapsed {_clock(elapsed)} | ETA {eta}")
    run_dir = paths.join(workdir, run.name)
    train_fn(config, run_dir)
    if not finished(run_dir, config.eval.protocols):  # preempted: no eval
      log(f"reproduce {table.name}: {run.name} stopped before its eval; "
          "rerun the command to resume it")
      break
    ran.append(run.name)
  if todo:
    log(f"reproduce {table.name}: {len(ran)} runs in {_clock(time.time() - t0)}")
  return ran, skipped
