"""``python -m tests.interrupted_demo OUT``: the ``demo`` command, run the way ``python -m
optuna_pandalm.commands.cli demo`` runs it, whose work is code run from source text, as the
import of torch and transformers is (dataclasses and namedtuple build their methods with
``exec`` and ``eval``): a Ctrl-C sent once it says "preparing" lands in such code."""

from __future__ import annotations

import sys
from typing import Any

from optuna_pandalm.commands import cli


def _demo_importing(**options: Any) -> dict[str, Any]:
    print("[demo] preparing the base model", file=sys.stderr, flush=True)
    while True:
        exec("for _ in range(1000): pass")


if __name__ == "__main__":
    cli.run_demo = _demo_importing
    sys.exit(cli.main(["demo", "--out", sys.argv[1]]))
