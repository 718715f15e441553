"""The paper's tables as one command.

  python -m bagssl_jax.reproduce --table=NAME --workdir=DIR
      [--variant=runlocal] [--methods=a,b] [--dry_run] [--config.FIELD=V ...]

`tables.py` lists the runs of each table (methods x {BagSSL patches, the
:rrc multi-scale baseline}, or patch sizes for fig3b), `runner.py` runs or
resumes them in DIR/<run> (a run whose eval/results.json holds its protocols
is skipped), `render.py` writes DIR/NAME.md and DIR/NAME.json with the
paper's number (`paper.json`, with where each comes from; null where it could
not be verified) beside each measured one.
"""
