"""The ``optuna-pandalm`` command line.

Printing happens here and nowhere else. Errors go to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from optuna_pandalm import __version__

_logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A user error: printed to stderr without a traceback, exit code 2."""


def _prompts(args: argparse.Namespace) -> int:
    from optuna_pandalm.prompts import PromptFormatError, load_prompts, prompt_set_hash

    try:
        prompts = load_prompts(args.file, on_invalid="skip" if args.skip_invalid else "raise")
    except PromptFormatError as error:
        raise CommandError(str(error)) from None
    summary = {
        "file": str(args.file),
        "n_prompts": len(prompts),
        "with_input": sum(bool(p.input) for p in prompts),
        "with_reference": sum(p.reference is not None for p in prompts),
        "hash": prompt_set_hash(prompts),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['file']}: {summary['n_prompts']} prompts "
            f"({summary['with_input']} with input, {summary['with_reference']} with reference), "
            f"set hash {summary['hash'][:16]}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-pandalm",
        description="Judge-driven hyperparameter search for LLM instruction tuning.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    prompts = commands.add_parser(
        "prompts",
        help="validate an evaluation prompt file and print its size and hash",
        description="Validate a prompt file (JSON list, JSONL, Alpaca, PandaLM inference "
        "format); errors name the file, line and field.",
    )
    prompts.add_argument("file", help="path to the prompt file")
    prompts.add_argument(
        "--skip-invalid", action="store_true", help="skip invalid records with a warning"
    )
    prompts.add_argument("--json", action="store_true", help="print one JSON document")
    prompts.set_defaults(handler=_prompts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except CommandError as error:
        print(f"optuna-pandalm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
