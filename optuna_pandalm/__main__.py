"""``python -m optuna_pandalm``: the ``optuna-pandalm`` command."""

if __name__ == "__main__":
    from optuna_pandalm.commands.cli import main

    raise SystemExit(main())
