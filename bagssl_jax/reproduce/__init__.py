"""The paper's tables as one command.

  python -m bagssl_jax.reproduce --table=NAME --workdir=DIR
      [--variant=runlocal] [--methods=a,b] [--checkpoints=DIR] [--dry_run]
      [--config.FIELD=V ...]

`tables.py` lists the runs of each table (methods x {BagSSL patches, the
:rrc multi-scale baseline}, patch sizes for fig3b, or the published
checkpoints of Tables 4-5), `runner.py` runs or resumes them in DIR/<run> (a
run whose eval/results.json holds its protocols is skipped), `external.py`
finds and evaluates Tables 4-5's checkpoints, `render.py` writes DIR/NAME.md
and DIR/NAME.json with the paper's number (`paper.json`, every cell with its
source) and the difference beside each measured one.
"""
