"""What ``check`` finds by comparing the arena with its Optuna study."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import SNAPSHOT_ATTR, WORKER_ATTR
from optuna_pandalm.store import pending_entries

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = [
    "STALL_LIMIT",
    "check_study",
    "journal_problems",
    "stalled_judging",
    "study_problems",
    "study_warnings",
]

STALL_LIMIT = 3600.0
"""Seconds a RUNNING trial's checkpoint may be judged without anything stored before
``check`` reports it: longer than a judge call may take with its retries."""


def check_study(
    arena: Arena,
    study: Any = None,
    *,
    tolerance: float = 1e-6,
    grace_period: float = 180.0,
    stall_limit: float = STALL_LIMIT,
) -> dict[str, list[str]]:
    """Every integrity problem of a study's arena, by kind (all lists empty when sound).

    The arena's own (:meth:`Arena.check <optuna_pandalm.Arena.check>`: duplicates, orphans,
    invalid verdicts counted as games, players without generations) and, with the Optuna
    ``study``, :func:`study_problems`. A RUNNING trial is a problem when no heartbeat
    reached Optuna's storage in the last ``grace_period`` seconds (or it never had one):
    its worker is probably gone; or when a checkpoint of it is being judged (stored, its
    score not yet reported) and nothing was stored for it in the last ``stall_limit``
    seconds: its worker, named by host and process, probably hangs (a judge that never
    answers, with ``judge_timeout`` off), though Optuna's heartbeat goes on beating.
    Verdicts a dead worker left in this machine's journal
    (:func:`journal_problems`) are a problem too, until ``check --repair`` stores them.
    """
    problems = arena.check()
    problems.update(journal_problems(arena))
    if study is not None:
        problems.update(
            study_problems(
                arena,
                study,
                tolerance=tolerance,
                grace_period=grace_period,
                stall_limit=stall_limit,
            )
        )
    return problems


def journal_problems(arena: Arena, *, root: Any = None) -> dict[str, list[str]]:
    """Segments of this machine's verdict journal of the study (``root``: its folder, by
    default ``$OPTUNA_PANDALM_JOURNAL`` or the user's cache) that no live worker holds: what
    a dead worker judged and the store never took. Read only."""
    found = pending_entries(arena.store.masked_url, arena.study_name, root=root)
    return {
        "unsaved verdicts in this machine's journal": [
            f"{verdicts} verdicts and {games} games in {path}: store them with "
            "`optuna-pandalm check --repair` (or by starting a worker)"
            for path, (verdicts, games) in found.items()
            if verdicts or games
        ]
    }


def study_warnings(arena: Arena) -> list[str]:
    """What ``check`` says besides problems: sound data that may still mislead, here a
    degenerate judge (:meth:`Arena.judge_warnings <optuna_pandalm.Arena.judge_warnings>`).
    Not a problem of the study's integrity: its games are stored as judged, and a refit
    reproduces them; the judge is what to change."""
    return arena.judge_warnings()


def study_problems(
    arena: Arena,
    study: Any,
    *,
    tolerance: float,
    grace_period: float,
    stall_limit: float = STALL_LIMIT,
) -> dict[str, list[str]]:
    """Players of trials the study lacks, trials left RUNNING without a heartbeat in the
    last ``grace_period`` seconds, RUNNING trials whose judging stored nothing in the last
    ``stall_limit`` seconds, and published scores a refit from scratch does not
    reproduce."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    numbers = {t.number for t in trials}
    problems = {
        "players of unknown trials": [
            p.label for p in arena.players() if p.trial is not None and p.trial not in numbers
        ]
    }
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    ages = arena.store.heartbeat_ages(study.study_name) if running else {}
    problems["trials left RUNNING"] = [
        f"trial {t.number}: RUNNING since {t.datetime_start:%Y-%m-%d %H:%M:%S} "
        + (
            "with no heartbeat"
            if ages.get(t.number) is None
            else f"with its last heartbeat {ages[t.number]:.0f} s ago"
        )
        + ": if no worker runs it any more, mark it failed "
        "(study.tell(number, state=TrialState.FAIL)), and give workers a heartbeat "
        "(RDBStorage(url, heartbeat_interval=60, grace_period=180)) so Optuna does it"
        for t in running
        if ages.get(t.number) is None or ages[t.number] > grace_period
    ]
    problems["trials whose judging stalled"] = stalled_judging(arena, running, stall_limit)
    stored = study.user_attrs.get(SNAPSHOT_ATTR)
    mismatches: list[str] = []
    if stored:
        refit = arena.standings_as_of(stored["max_game_id"], stored["max_player_id"])
        fresh = {p.key: float(refit.scores[i]) for i, p in enumerate(refit.players)}
        # The published scores are the top players' (older studies: every player's).
        players = stored.get("players", len(stored["scores"]))
        if len(fresh) != players or not set(stored["scores"]) <= set(fresh):
            mismatches.append(
                f"players differ: {len(fresh)} now up to the stored ids, {players} stored"
            )
        for key, score in stored["scores"].items():
            if key in fresh and abs(fresh[key] - score) > tolerance:
                mismatches.append(f"{key}: stored {score:+.6f}, refit {fresh[key]:+.6f}")
    problems["stored scores that a refit does not reproduce"] = mismatches
    return problems


def stalled_judging(arena: Arena, running: list[Any], stall_limit: float) -> list[str]:
    """The RUNNING trials among ``running`` whose newest checkpoint is being judged (stored,
    its score not yet reported at its step) with nothing stored for it (the checkpoint, its
    match, a game) in the last ``stall_limit`` seconds, each named with its worker
    (``pandalm_worker``: host and process id). Ages use this machine's clock against the
    writing worker's."""
    newest = {}
    for trial in running:
        own = arena.trial_players(trial.number)
        if own and own[-1].step is not None and own[-1].step not in trial.intermediate_values:
            newest[trial.number] = (trial, own[-1])
    if not newest:
        return []
    last = arena.store.last_stored(arena.arena_id, [p.id for _, p in newest.values()])
    now = time.time()
    found = []
    for trial, player in newest.values():
        age = now - last.get(player.id, now)
        if age <= stall_limit:
            continue
        opponents = arena.incumbent_opponents(player)
        against = f" against {opponents[-1].label}" if opponents else ""
        worker = trial.user_attrs.get(WORKER_ATTR)
        who = f"worker {worker} (host:pid)" if worker else "worker not recorded"
        found.append(
            f"trial {trial.number}: judging step {player.step}{against} stored nothing for "
            f"{age:.0f} s (stall limit {stall_limit:g} s); {who}: a hung judge? look at that "
            "process, set Arena(judge_timeout=...), restart the worker"
        )
    return found
