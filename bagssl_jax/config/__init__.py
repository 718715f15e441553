"""Configs: defaults, checks before any compile, the command line, presets.

  defaults.py    base_config(): every field a run reads; runlocal()
  validation.py  validate(): one-line ConfigError naming the field
  cli.py         --config errors as one `error:` line; config.json
  presets.py     build(dataset, method, arg): what every configs/*.py returns
"""
from bagssl_jax.config.cli import (OVERRIDE_ERRORS, exit_bad_override,
                                   flags_parser, from_json,
                                   loaded_config_or_exit, to_json)
from bagssl_jax.config.defaults import base_config, runlocal
from bagssl_jax.config.validation import ConfigError, validate, validate_eval

__all__ = ["ConfigError", "OVERRIDE_ERRORS", "base_config", "exit_bad_override",
           "flags_parser", "from_json", "loaded_config_or_exit", "runlocal",
           "to_json", "validate",
           "validate_eval"]
