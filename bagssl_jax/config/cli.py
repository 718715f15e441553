"""The command line's config errors and config.json (de)serialisation."""
from __future__ import annotations

import json
import sys

import ml_collections


def to_json(config) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """A ConfigDict from `config.json` (lists come back as tuples)."""
  def tuples(x):
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    return x
  return ml_collections.ConfigDict(tuples(json.loads(text)))


def one_line(error) -> str:
  """A flag error in one line: a config file that raised while loading
  (ml_collections puts the traceback in the message) gives the flag and the
  exception's own line, e.g. "flag --config=configs/x.py:nosuch: ValueError:
  unknown config variant 'nosuch' (choose from ...)"."""
  text = str(error).strip()
  if "Traceback" not in text:
    return " ".join(text.split())
  flag = text.split(": Error whilst parsing", 1)[0].splitlines()[0]
  return f"{flag}: {text.splitlines()[-1].strip()}"


def loaded_config_or_exit(flag_values, field="method", name="config"):
  """The config of a config-file flag, which loads lazily: a file that fails
  to load (or lacks `field`) is one `error:` line, exit 2."""
  try:
    config = flag_values[name].value
    config[field]  # pylint: disable=pointless-statement
    return config
  except Exception as e:  # pylint: disable=broad-except
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    print(f"error: cannot load {flag_values[name].serialize()}: "
          f"{lines[-1] if lines else type(e).__name__}", file=sys.stderr)
    sys.exit(2)


def flags_parser(hint):
  """An absl `flags_parser` for app.run: a bad --config file or
  --config.<field> override is one `error:` line (ending with `hint`), exit 2,
  instead of a traceback."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"error: {one_line(e)}", file=sys.stderr)
    except OVERRIDE_ERRORS as e:
      exit_bad_override(argv, e, hint)
    sys.exit(2)
  return parse


# What ml_collections raises for an unknown field or a value of the wrong type.
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def exit_bad_override(argv, error, hint):
  """One `error:` line naming the --config arguments, then exit 2."""
  bad = [a for a in argv[1:] if a.startswith("--config")]
  print(f"error: cannot apply {' '.join(bad)}: {type(error).__name__}: "
        f"{error} ({hint})", file=sys.stderr)
  sys.exit(2)
