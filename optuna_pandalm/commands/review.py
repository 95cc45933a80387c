"""``optuna-pandalm review``: serve the review page, or import Dashboard votes.

The CLI's parser imports this module: the review page, the arena and the store (SQLAlchemy)
are imported inside :func:`_run`, when the command runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from optuna_pandalm.commands._study_options import refuse_another_length_control
from optuna_pandalm.errors import CommandError

__all__ = ["add_review_command"]


def _run(args: argparse.Namespace) -> int:
    from optuna_pandalm.review import TOKEN_ENV, ReviewServer, open_arena
    from optuna_pandalm.store import StoreError
    from optuna_pandalm.url_masking import mask_url

    try:
        arena = open_arena(args.storage, args.study_name)
    except (StoreError, ValueError) as error:
        raise CommandError(str(error)) from None
    refuse_another_length_control(args, arena)
    where = f"study {args.study_name!r} in {mask_url(args.storage)!r}"
    if args.import_dashboard is not None:
        from optuna_pandalm.review import import_dashboard_votes

        try:
            done = import_dashboard_votes(
                arena, args.storage, args.import_dashboard, annotator=args.annotator
            )
        except KeyError:  # Optuna's "Record does not exist."
            raise CommandError(
                f"--import-dashboard {args.import_dashboard}: no study of that name in "
                f"{mask_url(args.storage)!r}"
            ) from None
        except ValueError as error:
            raise CommandError(f"--import-dashboard {args.import_dashboard}: {error}") from None
        print(
            f"{where}: {done.imported} votes imported from Dashboard study "
            f"{args.import_dashboard!r}, {done.repeated} already there, "
            f"{len(done.skipped)} preferences not mapped to checkpoints"
        )
        for why in done.skipped[:20]:
            print(f"  skipped {why}")
        return 0
    token = os.environ.get(TOKEN_ENV) or None
    try:
        server = ReviewServer(
            arena, host=args.host, port=args.port, token=token, contenders=args.contenders
        )
    except ValueError as error:  # a port out of range, a token that cannot travel
        raise CommandError(str(error).replace("the access token", f"${TOKEN_ENV}")) from None
    except OSError as error:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {error}") from None
    print(f"review page for {where}: {server.url}")
    if token is not None:
        print(f"access token required (from ${TOKEN_ENV}): open {server.url}?token=...")
    elif args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: {args.host} is not loopback and ${TOKEN_ENV} is unset: anyone who "
            "reaches this port can vote"
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def add_review_command(commands: Any, study_arguments: Any) -> None:
    """Register ``review`` on the CLI's sub-parsers."""
    review = commands.add_parser(
        "review",
        help="a web page for people's votes on the contenders (see docs/review.md)",
        description="Serve a page that shows one prompt and two checkpoints' answers in "
        "hidden order and records first / tie / second / skip under the person's name; the "
        "pairs that could change the leader come first. Binds to 127.0.0.1 unless --host "
        "says otherwise; when $OPTUNA_PANDALM_REVIEW_TOKEN is set every request must "
        "carry that token.",
    )
    study_arguments(review)
    review.add_argument("--host", default="127.0.0.1", help="interface (default loopback)")
    review.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    review.add_argument(
        "--contenders", type=int, default=4, help="reviews among the top K by P(best)"
    )
    review.add_argument(
        "--import-dashboard",
        metavar="STUDY",
        default=None,
        help="instead of serving, import the preferences given in Optuna Dashboard's "
        "preferential UI on STUDY (same storage) as votes",
    )
    review.add_argument(
        "--annotator", default="dashboard", help="name the imported votes are stored under"
    )
    review.set_defaults(handler=_run)
