"""The ``optuna-pandalm`` command line.

Printing happens here and nowhere else. Errors go to stderr with exit code 2.

The parser must load fast (``--help``, a typo): each subcommand imports what is heavy (the
arena and the store with SQLAlchemy and numpy, Optuna, the judges, ``tune``'s trainer, tqdm)
inside its function; torch and transformers never load before a model does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optuna_pandalm import __version__
from optuna_pandalm.attributes import SNAPSHOT_ATTR
from optuna_pandalm.commands._study_options import (
    add_storage_argument,
    add_study_arguments,
    refuse_another_length_control,
    resolve_storage,
)
from optuna_pandalm.commands.review import add_review_command
from optuna_pandalm.demo.run import next_steps, run_demo
from optuna_pandalm.errors import CommandError, JudgeFailedError, JudgeTimeoutError
from optuna_pandalm.prompts import PromptFormatError, load_prompts, prompt_set_hash
from optuna_pandalm.publish.report import write_report
from optuna_pandalm.url_masking import mask_secrets

_logger = logging.getLogger(__name__)


def _prompts(args: argparse.Namespace) -> int:
    try:
        prompts = load_prompts(args.file, on_invalid="skip" if args.skip_invalid else "raise")
    except PromptFormatError as error:
        raise CommandError(str(error)) from None
    summary: dict[str, Any] = {
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


def _judge_eval(args: argparse.Namespace) -> int:
    from optuna_pandalm.judges import evaluation

    try:
        pairs = evaluation.load_testset(args.data)
        if args.limit:
            pairs = pairs[: args.limit]
        swapped = None
        judge_named = f"the judge of {args.predictions}"
        if args.predictions:
            if args.swap:
                raise CommandError("--swap needs --judge (recorded predictions have one order)")
            predictions = evaluation.read_predictions(args.predictions)
        else:
            from tqdm.auto import tqdm

            from optuna_pandalm.judges.spec import judge_from_spec

            judge = judge_from_spec(args.judge)
            judge_named = f"judge {judge.name}"
            evaluation.check_judge(judge, pairs)  # before the progress bar starts
            total = len(pairs) * (2 if args.swap else 1)
            with tqdm(total=total, desc="judge-eval", unit="pair", file=sys.stderr) as bar:
                predictions, swapped = evaluation.judge_testset(
                    judge, pairs, swap=args.swap, batch_size=args.batch_size, progress=bar.update
                )
    except (ValueError, FileNotFoundError) as error:
        raise CommandError(str(error)) from None
    metrics = evaluation.evaluate_predictions(
        pairs, predictions, swapped=swapped, judge=judge_named
    )
    if args.json:
        print(json.dumps(metrics))
        for sentence in metrics["warnings"]:  # stdout holds one JSON document
            print(f"warning: {sentence}", file=sys.stderr)
        return 0
    print(f"pairs                {metrics['n']}")
    for key in ("accuracy", "precision", "recall", "f1"):
        print(f"{key + ' (macro)' if key != 'accuracy' else key:<21}{metrics[key]:.4f}")
    print(
        f"invalid predictions  {metrics['n_invalid']} (counted as ties), "
        f"missing {metrics['n_missing']}"
    )
    if metrics["length_preference"] is not None:
        print(
            f"picks longer         {metrics['length_preference']:.3f} of decisive verdicts "
            f"(humans {metrics['human_length_preference']:.3f})"
        )
    if metrics.get("length_controlled_accuracy") is not None:
        print(
            f"length-controlled    {metrics['length_controlled_accuracy']:.4f} "
            f"(accuracy {metrics['decisive_accuracy']:.4f} on the same decided pairs: "
            f"{metrics['accuracy_when_longer_preferred']:.4f} where people preferred the "
            f"longer, {metrics['accuracy_when_shorter_preferred']:.4f} the shorter)"
        )
    if metrics.get("position_consistency") is not None:
        print(
            f"position consistency {metrics['position_consistency']:.3f} "
            f"over {metrics['n_swap_compared']} pairs judged in both orders"
        )
    if metrics["verdict_shares"] is not None:
        shares = metrics["verdict_shares"]
        print(
            f"verdicts as shown    first {shares['first']:.3f}, second {shares['second']:.3f}, "
            f"tie {shares['tie']:.3f} of {metrics['n_valid_verdicts']} valid verdicts"
        )
    for sentence in metrics["warnings"]:  # a warning, not an error: the exit code stays 0
        print(f"warning: {sentence}")
    return 0


def _load_arena(args: argparse.Namespace) -> Any:
    from optuna_pandalm.arena import Arena
    from optuna_pandalm.store import StoreError

    try:
        arena = Arena.load(args.storage, args.study_name)
    except (StoreError, ValueError) as error:
        raise CommandError(str(error)) from None
    refuse_another_length_control(args, arena)
    return arena


def _leaderboard(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise CommandError(f"--top must be >= 0 (0: every player), got {args.top}")
    standings = _load_arena(args).standings()
    rows = standings.leaderboard(top=args.top or None)
    fit = standings.result
    if args.json:
        document = {
            "study": args.study_name,
            "position_effect": fit.position_effect,
            "tie_strength": fit.tie_strength,
            "score_meaning": standings.score_meaning(),
            **standings.model_effects(),
            "rows": [row.as_dict() for row in rows],
        }
        print(json.dumps(document))
        return 0
    _print_rows(rows)
    print(f"position effect {fit.position_effect:+.3f}, tie strength {fit.tie_strength:.3f}")
    print(f"scores: {standings.score_meaning()}")
    length = standings.length_effect()
    if length is not None:
        print(f"length effect {length.estimate:+.3f} [{length.low:+.3f}, {length.high:+.3f}]")
    return 0


def _print_rows(rows: Sequence[Any]) -> None:
    """The leaderboard as an aligned table."""
    header = f"{'#':>3}  {'player':<24}{'score':>8}  {'95% interval':>17}{'P(best)':>9}"
    # Optional columns appear when some row has them: people's votes, identical-answer ties
    # (stored, not fitted: docs/statistics.md).
    extra = [
        (name, width, attribute)
        for name, width, attribute in (
            ("human votes", 13, "human_votes"),
            ("identical", 11, "identical"),
        )
        if any(getattr(row, attribute) for row in rows)
    ]
    titles = "".join(f"{name:>{width}}" for name, width, _ in extra)
    print(f"{header}{'games':>7}  {'W-T-L':<9}{titles}".rstrip())
    for rank, row in enumerate(rows, start=1):
        who = row.label
        interval = f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
        record = f"{row.wins}-{row.ties}-{row.losses}"
        values = "".join(f"{getattr(row, a):>{width}}" for _, width, a in extra)
        print(
            f"{rank:>3}  {who:<24}{row.score:>+8.3f}  {interval:>17}{row.p_best:>9.3f}"
            f"{row.games:>7}  {record:<9}{values}".rstrip()
        )


def _load_study(args: argparse.Namespace) -> Any:
    """The Optuna study, or ``None`` when the storage has none of that name; opened without
    creating or migrating anything."""
    import optuna

    from optuna_pandalm.store import optuna_storage_arguments
    from optuna_pandalm.url_masking import mask_url

    try:
        url, engine_kwargs = optuna_storage_arguments(args.storage)  # ?prepare_threshold=none
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs, skip_compatibility_check=True, skip_table_creation=True
        )
        return optuna.load_study(study_name=args.study_name, storage=storage)
    except KeyError:
        return None
    except Exception as error:  # an Optuna-less or unreadable database
        raise CommandError(
            f"cannot read the Optuna study in {mask_url(args.storage)!r}: "
            f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from None


def _check(args: argparse.Namespace) -> int:
    from optuna_pandalm.study.check import check_study, study_warnings

    if not (math.isfinite(args.grace_period) and args.grace_period >= 0):
        raise CommandError(f"--grace-period must be >= 0 seconds, got {args.grace_period}")
    if not 0 < args.stall_limit < math.inf:  # NaN too
        raise CommandError(
            f"--stall-limit must be a positive number of seconds, got {args.stall_limit}"
        )
    if args.repair:
        _replay_journals(args.storage, args.study_name)
    arena = _load_arena(args)
    study = _load_study(args)
    if study is None:
        print(f"note: no Optuna study {args.study_name!r} in that storage; trial checks skipped")
    problems = check_study(
        arena, study, grace_period=args.grace_period, stall_limit=args.stall_limit
    )
    total = sum(len(found) for found in problems.values())
    standings = arena.standings()
    games = int(standings.counts.count.sum())
    print(f"study {args.study_name!r}: {games} games, {len(standings.players)} players")
    for kind, found in problems.items():
        print(f"  {'FAIL' if found else 'ok  '}  {kind}" + (f": {len(found)}" if found else ""))
        for item in found[:10]:
            print(f"          {item}")
        if len(found) > 10:
            print(f"          ... and {len(found) - 10} more")
    if study is not None and SNAPSHOT_ATTR not in study.user_attrs:
        print(
            "  note  no published scores yet (no trial finished with PublishCallback): "
            "score check skipped"
        )
    for sentence in study_warnings(arena):  # not a problem: the exit code stays
        print(f"warning: {sentence}")
    print("problems found" if total else "no problems found")
    return 1 if total else 0


def _upgrade(args: argparse.Namespace) -> int:
    from optuna_pandalm.store import Store, StoreError

    try:
        Store(args.storage, read_only=True).close()  # a mistyped path creates nothing
        store = Store(args.storage)  # opening a writable store migrates it in place
        before, after = store.upgrade()
    except StoreError as error:
        raise CommandError(str(error)) from None
    if before == after:
        print(f"{store.masked_url}: schema {after}, up to date")
    else:
        print(f"{store.masked_url}: schema {before} -> {after}, every row kept")
    _replay_journals(args.storage, None, store=store)
    return 0


def _replay_journals(url: str, study_name: str | None, *, store: Any = None) -> None:
    """Store what dead workers on this machine left in the verdict journal of a study (of
    every study of the database when ``study_name`` is ``None``), and say so."""
    from optuna_pandalm.store import Store, StoreError, journal_root, replay_journals

    try:
        if store is None:
            Store(url, read_only=True).close()  # a mistyped path creates nothing
            store = Store(url)
        done = replay_journals(store, study_name)
    except StoreError as error:
        raise CommandError(str(error)) from None
    if done.segments:
        torn = f"; {done.torn} torn lines skipped" if done.torn else ""
        print(
            f"journal: stored {done.verdicts} verdicts and {done.games} games left in "
            f"{journal_root()} by workers that died{torn}"
        )
    if done.in_use:
        print(f"journal: {done.in_use} segments held by live workers, left to them")


def _report(args: argparse.Namespace) -> int:
    if not Path(args.out).parent.is_dir():
        raise CommandError(f"--out {args.out}: no such folder {Path(args.out).parent}")
    if Path(args.out).is_dir():
        raise CommandError(f"--out {args.out} is a folder: give the HTML file to write")
    arena = _load_arena(args)
    study = _load_study(args)
    if study is None:
        raise CommandError(f"no Optuna study {args.study_name!r} in that storage")
    try:
        written = write_report(arena, study, args.out)
    except OSError as error:  # an unwritable folder or file
        raise CommandError(f"--out {args.out}: cannot write ({error.strerror})") from None
    print(written)
    return 0


def _warn_if_every_game_tied(standings: Any, study_name: str) -> None:
    """A study whose games are all ties has learnt nothing: say so, with the usual causes."""
    counts = standings.counts
    games = int(counts.count.sum())
    if games and not int(counts.count[counts.outcome != 0].sum()):
        print(
            f"warning: all {games} games of study {study_name!r} were ties: the judge told no "
            "two checkpoints apart, so every score is 0 and the search was blind; look at the "
            "answers in the report (prompts too long for the model's context, too few "
            "max_new_tokens, a judge that cannot decide)",
            file=sys.stderr,
        )


def _check_tune_options(args: argparse.Namespace) -> None:
    """``--n-trials`` (a total, finished trials included) and ``--timeout`` must be able to
    run something: 0 or -1 trials, or a timeout of 0 s, would end at once and exit 0."""
    if args.n_trials is not None and args.n_trials < 1:
        raise CommandError(
            f"--n-trials: expected an integer >= 1 (the study's total), got {args.n_trials}"
        )
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise CommandError(f"--timeout: expected seconds > 0, got {args.timeout}")


def _tune(args: argparse.Namespace) -> int:
    from optuna_pandalm.commands.preflight import preflight
    from optuna_pandalm.training.tuning import ConfigError, TuneConfig
    from optuna_pandalm.url_masking import mask_url

    _check_tune_options(args)
    try:
        config = TuneConfig.from_file(args.config)
    except ConfigError as error:
        raise CommandError(str(error)) from None
    try:
        checked = preflight(config)
    except ConfigError as error:
        raise CommandError(f"{args.config}: {error}") from None
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    n_trials = args.n_trials if args.n_trials is not None else config.n_trials
    timeout = args.timeout if args.timeout is not None else config.timeout
    defaults = config.search_space.defaults_used()
    if args.dry_run:
        if defaults:
            print(defaults)
        fit = (
            f"context {checked.context} tokens, longest eval prompt {checked.longest_prompt}"
            f" + {config.max_new_tokens} new"
            if checked.context
            else "context unknown"
        )
        print(
            f"{args.config}: valid; {n_trials} trials on {config.base_model} ({fit}); "
            f"{len(checked.eval_prompts)} eval prompts, {checked.n_train_records} training "
            f"records; judge {config.judge}; study {config.study_name!r} in "
            f"{mask_url(config.storage)} ({checked.storage})"
        )
        return 0
    import optuna

    from optuna_pandalm.arena import Arena
    from optuna_pandalm.judges.spec import judge_from_spec
    from optuna_pandalm.store import StoreError
    from optuna_pandalm.study.judged_study import open_judged_study, optimize, trials_to_run
    from optuna_pandalm.training.tuning import make_objective

    try:
        judge = judge_from_spec(config.judge)
        arena = Arena(
            config.storage,
            config.study_name,
            judge,
            checked.eval_prompts,
            seed=config.seed,
            length_control=config.length_control,
        )
        study = open_judged_study(
            arena,
            config.storage,
            base_sampler=optuna.samplers.TPESampler(seed=config.seed),
            baseline_params=config.baseline,
        )
    except (ValueError, FileNotFoundError, StoreError) as error:
        raise CommandError(f"{args.config}: {error}") from None
    left = trials_to_run(study, n_trials)
    if not left:
        finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        print(
            f"study {config.study_name!r} in {mask_url(config.storage)} already has "
            f"{finished} finished trials, n_trials is {n_trials}: nothing to run; to add "
            f"trials pass --n-trials {finished + 1} or more (a total) or raise n_trials in "
            "the config"
        )
        return 0
    if defaults:
        print(defaults, file=sys.stderr)
    with warnings.catch_warnings():
        # Optuna's raw "Fixed parameter ... out of range": the baseline's value outside a
        # range was already named in our words (preflight's warnings).
        warnings.filterwarnings("ignore", message="Fixed parameter ")
        try:
            optimize(
                study, make_objective(config, arena), arena=arena, n_trials=left, timeout=timeout
            )
        except JudgeFailedError as error:
            raise CommandError(
                f"{args.config}: the judge failed; the trial is marked FAIL (its "
                f"pandalm_error says why): {error}"
            ) from None
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    report = write_report(arena, study, f"{config.output_dir}/report.html")
    standings = arena.standings()
    _print_rows(standings.leaderboard(top=10))
    print(f"scores: {standings.score_meaning()}")
    _warn_if_every_game_tied(standings, config.study_name)
    print(f"report: {report}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        if not args.json:
            print(f"[demo] {message}", file=sys.stderr, flush=True)

    from optuna_pandalm.store import StoreError

    if args.n_trials < 1:
        raise CommandError(f"--n-trials: expected an integer >= 1, got {args.n_trials}")
    try:
        summary = run_demo(
            storage=args.storage,
            study_name=args.study_name,
            n_trials=args.n_trials,
            out=args.out,
            seed=args.seed,
            progress=say,
        )
    except StoreError as error:  # a bad --storage, or a study of that name on other prompts
        raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{'trial':>7} {'step':>6} {'score':>8} {'95% interval':>18} {'P(best)':>8}  W-T-L")
    for row in summary["leaderboard"]:
        who = f"{row['trial']}" if row["trial"] is not None else str(row["name"])
        interval = f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
        print(
            f"{who:>7} {row['step'] if row['step'] is not None else '-':>6} {row['score']:>+8.3f} "
            f"{interval:>18} {row['p_best']:>8.3f}  {row['wins']}-{row['ties']}-{row['losses']}"
        )
    print(f"scores: {summary['score_meaning']}")
    accuracy = summary["heldout_accuracy"]
    print(f"\nbest trial {summary['best_trial']} (step {summary['best_step']}):")
    for name, value in summary["best_params"].items():
        print(f"  {name:<14} {value:.3g}" if isinstance(value, float) else f"  {name:<14} {value}")
    print(
        f"held-out exact match: best trial {accuracy['best']:.2f}, "
        f"baseline (Alpaca defaults, trial {summary['baseline_trial']}) {accuracy['baseline']:.2f}"
    )
    print(f"report: {summary['report']} ({summary['seconds']} s)\n")
    print(*next_steps(summary), sep="\n")
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

    demo = commands.add_parser(
        "demo",
        help="run the whole judge-driven search on CPU in a few minutes, no downloads",
        description="Tune a tiny model on a synthetic instruction task with a reference "
        "judge, BradleyTerrySampler(TPE) and JudgePruner; print the leaderboard and write an "
        "HTML report.",
    )
    add_storage_argument(demo, required=False)
    demo.add_argument("--study-name", default="optuna-pandalm-demo")
    demo.add_argument("--n-trials", type=int, default=12, help="trials, the baseline included")
    demo.add_argument(
        "--out", default="optuna-pandalm-demo", help="folder for the report and runs"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.set_defaults(handler=_demo)

    leaderboard = commands.add_parser(
        "leaderboard", help="the study's players by judge score, with intervals and P(best)"
    )
    add_study_arguments(leaderboard)
    leaderboard.add_argument("--top", type=int, default=0, help="only the K best")
    leaderboard.add_argument("--json", action="store_true", help="print one JSON document")
    leaderboard.set_defaults(handler=_leaderboard)

    check = commands.add_parser(
        "check",
        help="integrity check of the stored games and verdicts (exit 1 on a problem)",
        description="Duplicates, orphans, invalid verdicts counted as games, stored winners "
        "outside 0/1/2/NULL, players without generations or of unknown trials, trials left "
        "RUNNING without a heartbeat, and published scores against a refit from scratch. "
        "Unsaved verdicts in this machine's journal are a problem too. Read-only: creates "
        "nothing (unless --repair).",
    )
    add_study_arguments(check)
    check.add_argument(
        "--grace-period",
        type=float,
        default=180.0,
        help="seconds without an Optuna heartbeat after which a RUNNING trial is reported",
    )
    check.add_argument(
        "--stall-limit",
        type=float,
        default=3600.0,
        help="seconds a RUNNING trial's checkpoint may be judged with nothing stored before "
        "it is reported, with its worker's host and process id",
    )
    check.add_argument(
        "--repair",
        action="store_true",
        help="first store the verdicts and games that dead workers on this machine left in "
        "the study's journal ($OPTUNA_PANDALM_JOURNAL, else "
        "$XDG_CACHE_HOME/optuna-pandalm/journal); this writes to the database",
    )
    check.set_defaults(handler=_check)

    upgrade = commands.add_parser(
        "upgrade",
        help="migrate the optuna-pandalm tables to this version's schema (like "
        "`optuna storage upgrade`)",
        description="Migrate the pandalm_ tables in place, keeping every verdict, game and "
        "score, then store what dead workers on this machine left in the verdict journal "
        "of the database's studies. Stop every worker first: workers of an older version "
        "cannot write to the new schema.",
    )
    add_storage_argument(upgrade)
    upgrade.set_defaults(handler=_upgrade)

    report = commands.add_parser("report", help="write a self-contained HTML report")
    add_study_arguments(report)
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.set_defaults(handler=_report)

    tune = commands.add_parser(
        "tune",
        help="config-driven instruction-tuning search (see docs/tune.md)",
        description="Run a judge-driven search from a YAML or JSON config; an interrupted "
        "study resumes where it stopped.",
    )
    tune.add_argument("config", help="the config file (YAML or JSON)")
    tune.add_argument(
        "--dry-run",
        action="store_true",
        help="run every check short of training (prompts, judge, model config and "
        "context, storage) and stop",
    )
    tune.add_argument("--n-trials", type=int, default=None, help="override the file's n_trials")
    tune.add_argument("--timeout", type=float, default=None, help="seconds; overrides the file")
    tune.set_defaults(handler=_tune)

    judge_eval = commands.add_parser(
        "judge-eval",
        help="measure a judge against PandaLM's human labels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Accuracy and macro precision / recall / F1 over {tie, 1, 2} against the "
        "annotators' majority (PandaLM's protocol), plus length preference and, with --swap, "
        "position consistency.",
        epilog="""Predictions (--predictions): a JSON list with 'idx' and the label in 'result'
or one '*_result' field, as 0/1/2 or "1", "2", "Tie" in any case. Any other value
(e.g. "garbage") counts as a tie in the headline metrics, as in PandaLM's script, and is
reported as invalid. Judges (--judge): local:/path/to/model?format=prometheus2 (any format
in optuna_pandalm.judges.FORMATS; a path may be a .gguf file), pandalm:/path/to/model,
reward:/path/to/model, remote:http://host:8000/v1?model=NAME&format=mtbench (see
docs/judges.md). Reference judges
(reference:rouge_l, token_f1, exact, char_ratio) cannot run on PandaLM's test set: it has
no reference answers, and they are refused before any work.

Data (--data): "pandalm" is PandaLM's human-annotated test set shipped with this package
(999 pairs, Apache-2.0); a path reads another file in its format (./pandalm for a file of
that name). Test-set quirks: six responses are the JSON value true (pairs 157-164) and are
judged as the text "true"; 54 pairs have an empty response and are judged as they are;
pairs of equally long responses are left out of the length preference.

Warnings: a line starting "warning:" (exit code 0) says the judge is degenerate: one
label (first shown wins, second shown wins, tie) in 90% or more of its valid verdicts,
position consistency under 0.5 with --swap, or half its verdicts or more invalid
(docs/judges.md, "Degenerate judges"). With --json they are in "warnings" and on stderr.

Example: optuna-pandalm judge-eval --data pandalm --predictions pandalm-7b-testset-v1.json""",
    )
    judge_eval.add_argument(
        "--data",
        required=True,
        help="'pandalm' (the packaged human-annotated test set) or a testset-v1.json path",
    )
    source = judge_eval.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="recorded predictions (JSON list by idx)")
    source.add_argument("--judge", help="judge spec to run, e.g. pandalm:/models/pandalm-7b")
    judge_eval.add_argument("--swap", action="store_true", help="also judge swapped orders")
    judge_eval.add_argument("--batch-size", type=int, default=32, help="pairs per judge call")
    judge_eval.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    judge_eval.add_argument("--json", action="store_true", help="print one JSON document")
    judge_eval.set_defaults(handler=_judge_eval)

    add_review_command(commands, add_study_arguments)
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
    logging.getLogger("optuna.study._optimize").addFilter(_no_interrupt_traceback)
    try:
        resolve_storage(args)
        return handler(args)
    except CommandError as error:
        # An error may quote a URL (a driver's message): its secrets never reach the screen.
        print(f"optuna-pandalm {args.command}: error: {mask_secrets(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = (
            "; a trial in progress is marked FAIL; run the same command again to resume"
            if args.command in ("tune", "demo")
            else ""
        )
        print(f"optuna-pandalm {args.command}: interrupted (Ctrl-C){resume}", file=sys.stderr)
        return 130
    finally:
        _forget_escaped_interrupt()


def _forget_escaped_interrupt() -> None:
    """Make a Ctrl-C that was handled end the process with the status ``main`` returns.

    CPython notes a ``KeyboardInterrupt`` that escapes source text run by ``exec`` or
    ``eval`` (dataclasses and namedtuple build their methods so: a Ctrl-C during the import
    of torch or transformers often lands there) and, under ``python -m``, ends the process
    by SIGINT at exit (status -2) although the exception was handled here. Running source
    text clears that note; when nothing escaped, this does nothing.
    """
    exec("")


def _no_interrupt_traceback(record: logging.LogRecord) -> bool:
    """Drop Optuna's "Trial N failed" record for a Ctrl-C or a judge that failed for good:
    its traceback runs to 130-170 lines, and ``main`` says what happened in one. A judge
    call that timed out keeps it: the study goes on, and that record is what tells."""
    error = record.exc_info[1] if record.exc_info else None
    reported = isinstance(error, (KeyboardInterrupt, JudgeFailedError))
    return not (reported and not isinstance(error, JudgeTimeoutError))


if __name__ == "__main__":
    sys.exit(main())
