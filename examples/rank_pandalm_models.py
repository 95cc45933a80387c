"""Rank PandaLM's five base models from recorded pairwise verdicts, end to end.

PandaLM's human-annotated test set compares responses of five 7B models (LLaMA, Bloom,
Cerebras-GPT, OPT, Pythia) on 999 instructions, each pair judged by three annotators, and
PandaLM-7B's own verdicts on the same pairs are recorded. This example stores both sets of
verdicts as games in SQL (prompt set, named players, verdict cache, games), fits
Bradley–Terry–Davidson scores with a position effect and instruction-clustered errors from
the stored counts, and prints a leaderboard per judge and how well the judge's ranking
agrees with the humans'.

    python examples/rank_pandalm_models.py [--storage sqlite:///out/models.db] [--json]

The test set is the copy shipped with the package; PandaLM-7B's recorded verdicts are read
from ``--predictions`` (default: the copy in ``tests/data/pandalm/`` of this repository).

Response 1 was shown first in every pair, so the first-shown model is the one named first
in ``cmp_key``. The errors are clustered by instruction: the 999 rows ask about 170
instructions, each answered by several pairs of models, and games on one instruction are
not independent. Six responses are the JSON value ``true``: they are judged as the text
"true". One row (idx 466) has a blank instruction: the prompt loader skips it with a
warning, so 998 games remain.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import stats

from optuna_pandalm import Store, fit_bradley_terry, load_prompts
from optuna_pandalm.store import GameRecord, StoredVerdict, VerdictKey, text_hash

TESTSET = importlib.resources.files("optuna_pandalm").joinpath(
    "data", "pandalm", "testset-v1.json"
)
RECORDED = Path(__file__).resolve().parents[1] / "tests/data/pandalm/pandalm-7b-testset-v1.json"


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _majority(row: dict) -> int:
    votes = Counter(row[f"annotator{k}"] for k in (1, 2, 3))
    label, count = votes.most_common(1)[0]
    return label if count >= 2 else 0


def store_games(
    store: Store, study: str, rows: list[dict], labels: dict[int, int]
) -> tuple[int, list[int]]:
    """Store one judge's verdicts on the test set as games; returns the arena id and, for each
    stored prompt position, the number of its instruction (the cluster of its games)."""
    prompts = load_prompts(
        [{"id": r["idx"], "instruction": r["instruction"], "input": r["input"]} for r in rows],
        on_invalid="skip",
        # The test set asks each instruction of several pairs of responses: one position
        # per row, each with its own recorded verdict.
        allow_duplicates=True,
    )
    instruction_number: dict[str, int] = {}
    clusters = [
        instruction_number.setdefault(p.instruction, len(instruction_number)) for p in prompts
    ]
    position = {p.id: i for i, p in enumerate(prompts)}
    arena = store.bind_study(study, store.save_prompt_set(prompts))
    judge = f"recorded/{study}"
    by_pair: dict[tuple[str, str], list[tuple[int, dict, VerdictKey]]] = {}
    items = []
    for row in rows:
        where = position.get(str(row["idx"]))
        if where is None:
            continue
        key = VerdictKey(
            prompts[where].hash,
            text_hash(_text(row["response1"])),
            text_hash(_text(row["response2"])),
        )
        items.append((key, StoredVerdict(winner=labels[row["idx"]])))
        first, second = row["cmp_key"].split("_", 1)
        by_pair.setdefault((first, second), []).append((where, row, key))
    verdicts = store.save_verdicts(judge, items)
    for (first, second), games in by_pair.items():
        a, b = store.player(arena, name=first), store.player(arena, name=second)
        match = store.start_match(arena, a, b, kind="recorded")
        store.save_games(
            arena,
            match,
            [
                GameRecord(where, a, b, verdicts[key].id, verdicts[key].winner)
                for where, _, key in games
            ],
        )
    return arena, clusters


def leaderboard(store: Store, arena: int, clusters: list[int]) -> dict:
    """Fit Bradley–Terry on the stored counts of one arena, errors clustered by instruction
    (``clusters[prompt position]``)."""
    players = store.players(arena)
    index = {p.id: i for i, p in enumerate(players)}
    counts = store.game_counts(arena, by_prompt=True)
    result = fit_bradley_terry(
        [index[p] for p in counts.first],
        [index[p] for p in counts.second],
        counts.outcome,
        weights=counts.count,
        clusters=np.asarray(clusters)[counts.prompt_position],
        n_players=len(players),
    )
    low, high = result.interval(0.95)
    p_best = result.p_best(n_samples=20_000, seed=0)
    rows = sorted(
        (
            {
                "model": player.name,
                "score": round(float(result.scores[i]), 3),
                "ci_low": round(float(low[i]), 3),
                "ci_high": round(float(high[i]), 3),
                "p_best": round(float(p_best[i]), 3),
            }
            for i, player in enumerate(players)
        ),
        key=lambda row: -row["score"],
    )
    return {
        "anchor": players[result.anchor].name,
        "games": int(result.n_games),
        "position_effect": round(result.position_effect, 3),
        "tie_strength": round(result.tie_strength, 3),
        "leaderboard": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predictions", type=Path, default=RECORDED, help="PandaLM-7B's recorded verdicts"
    )
    parser.add_argument("--storage", default="sqlite://", help="SQLAlchemy URL (default: memory)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    rows = json.loads(TESTSET.read_text(encoding="utf-8"))
    recorded = json.loads(args.predictions.read_text(encoding="utf-8"))
    judges = {
        "humans": {row["idx"]: _majority(row) for row in rows},
        "pandalm-7b": {row["idx"]: int(row["pandalm_result"]) for row in recorded},
    }
    store = Store(args.storage)
    report = {
        name: leaderboard(store, *store_games(store, f"pandalm-models/{name}", rows, labels))
        for name, labels in judges.items()
    }
    scores = {
        name: {row["model"]: row["score"] for row in board["leaderboard"]}
        for name, board in report.items()
    }
    models = sorted(scores["humans"])
    tau = stats.kendalltau(
        [scores["humans"][m] for m in models], [scores["pandalm-7b"][m] for m in models]
    ).statistic
    report["kendall_tau_humans_vs_pandalm"] = round(float(tau), 3)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name in judges:
        board = report[name]
        print(
            f"\n{name}: {board['games']} games, anchor {board['anchor']}, "
            f"position effect {board['position_effect']:+.3f}, "
            f"tie strength {board['tie_strength']:.3f}"
        )
        print(f"  {'model':<20}{'score':>8}  {'95% interval':>18}{'P(best)':>9}")
        for row in board["leaderboard"]:
            interval = f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
            print(
                f"  {row['model']:<20}{row['score']:>+8.3f}  {interval:>18}{row['p_best']:>9.3f}"
            )
    print(f"\nKendall tau between the human and PandaLM-7B rankings: {tau:.3f}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
