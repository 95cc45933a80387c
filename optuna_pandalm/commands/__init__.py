"""The ``optuna-pandalm`` command line: the only code that prints for people.

* ``cli``: the parser and every subcommand but ``review``; :func:`main`.
* ``review``: the ``review`` subcommand (the review page, Dashboard imports).
* ``preflight``: what ``tune`` checks before it trains (``--dry-run``).
* ``_study_options``: the options of every command on a stored study.

The top of the house: it may import every wing; no wing imports it.
"""
