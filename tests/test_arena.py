"""Specification of the arena, the sampler wrapper and the pruner on simulated studies."""

from __future__ import annotations

import multiprocessing
import statistics

import numpy as np
import optuna
import pytest
from scipy import stats

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, JudgeRequest, Verdict
from optuna_pandalm.arena import JudgeFailedError, MatchRules
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.store import PromptSetMismatchError, Store
from optuna_pandalm.testing import Landscape, SimulatedJudge, simulated_prompts, simulated_response
from tests.studies import run_study

SEEDS = range(10)


@pytest.fixture(scope="module")
def studies(memory_folder):
    """30-trial simulated studies over 10 seeds, with BT+TPE and BT+random. Only ("tpe", 0),
    which the tests of stored values and the leaderboard read, publishes after each trial:
    publishing changes no decision (the same trials, scores and leaderboards) and took a
    third of the time."""
    runs = {}
    for seed in SEEDS:
        for sampler in ("tpe", "random"):
            folder = memory_folder / f"arena-{sampler}-{seed}"
            folder.mkdir()
            runs[sampler, seed] = run_study(
                f"sqlite:///{folder / 'db.sqlite'}",
                seed=seed,
                sampler=sampler,
                publish=(sampler, seed) == ("tpe", 0),
            )
    return runs


def _chosen_quality(run) -> float:
    top = run.arena.leaderboard()[0]
    return run.truth[(top.trial, top.step)]


def test_top_ranked_checkpoint_is_close_to_the_truly_best_one_evaluated(studies):
    margins = [max(run.truth.values()) - _chosen_quality(run) for run in studies.values()]
    assert statistics.median(margins) <= 0.2  # log-odds; checkpoints span about 4


def test_top_rows_of_the_leaderboard_are_the_full_leaderboards_first_rows(studies):
    arena = studies["tpe", 0].arena
    top = arena.leaderboard(top=5)  # first: intervals by solves, not cached
    full = arena.leaderboard()
    assert len(full) > 5 and len(top) == 5
    for quick, row in zip(top, full, strict=False):
        assert (quick.trial, quick.step, quick.p_best, quick.games) == (
            row.trial,
            row.step,
            row.p_best,
            row.games,
        )
        assert quick.ci_low == pytest.approx(row.ci_low, rel=1e-6)
        assert quick.ci_high == pytest.approx(row.ci_high, rel=1e-6)


class _Seeing(optuna.samplers.RandomSampler):
    """A base sampler that keeps the trials the wrapper showed it."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.shown: list[optuna.trial.FrozenTrial] = []

    def infer_relative_search_space(self, study, trial):
        self.shown = study.get_trials(deepcopy=False)
        return {}


def _trials_the_base_sampler_sees(run) -> list[optuna.trial.FrozenTrial]:
    seeing = _Seeing()
    wrapper = BradleyTerrySampler(run.arena, seeing)
    wrapper.infer_relative_search_space(run.study, run.study.trials[-1])
    return seeing.shown


def test_trial_scores_track_the_truth(studies):
    correlations = []
    for run in studies.values():
        shown = _trials_the_base_sampler_sees(run)
        complete = [t for t in shown if t.state == optuna.trial.TrialState.COMPLETE]
        seen = [t.value for t in complete]
        true = [
            max(q for (trial, _), q in run.truth.items() if trial == t.number) for t in complete
        ]
        correlations.append(stats.spearmanr(seen, true).statistic)
    assert statistics.median(correlations) >= 0.7


def test_bt_tpe_is_not_worse_than_random_search(studies):
    tpe = statistics.median(_chosen_quality(studies["tpe", s]) for s in SEEDS)
    random = statistics.median(_chosen_quality(studies["random", s]) for s in SEEDS)
    assert tpe >= random


def test_pruner_prunes_poor_trials_but_never_one_clearly_better_than_all_it_keeps(studies):
    pruned_share, decisions = [], []
    for run in studies.values():
        pruned = {t.number for t in run.study.trials if t.state == optuna.trial.TrialState.PRUNED}
        kept = max(q for t, q in run.potential.items() if t not in pruned)
        # What pruning can cost: the best trial pruned when the best one kept is clearly worse
        # (0.1 log-odds; between near-equals a one-sided test at 5% errs now and then).
        assert all(run.potential[t] <= kept + 0.1 for t in pruned)
        pruned_share.append(len(pruned) / len(run.study.trials))
        for number in pruned:  # was the checkpoint that beat it truly better?
            last = run.arena.trial_players(number)[-1]
            winner = run.arena.incumbent_opponents(last)[-1]
            decisions.append(run.truth[number, last.step] < run.truth[winner.trial, winner.step])
    assert statistics.median(pruned_share) >= 0.3
    assert sum(decisions) / len(decisions) >= 0.95  # 367 of 373 when written


def test_completed_trial_values_in_storage_are_never_rewritten(studies):
    run = studies["tpe", 0]
    stored = {
        t.number: t.value for t in run.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    }
    proxy = {t.number: t.value for t in _trials_the_base_sampler_sees(run)}
    fresh = optuna.load_study(study_name=run.study.study_name, storage=run.study._storage)
    assert {
        t.number: t.value for t in fresh.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    } == stored
    assert any(proxy[n] != v for n, v in stored.items())  # the sampler sees current scores


# --- matches -------------------------------------------------------------------------------------
def _planted(arena: Arena, qualities: list[float]) -> None:
    for trial, quality in enumerate(qualities):
        texts = [
            simulated_response(quality + 0.3 * np.sin(i + trial))
            for i in range(len(arena.prompts))
        ]
        arena.evaluate(trial, 1, texts)


def test_racing_spends_fewer_judge_calls_and_finds_the_same_leader(tmp_path):
    qualities = [0.0, 1.5, -1.0, 4.0, 1.0, 2.5]  # clear gaps: what racing is for
    leaders, calls = {}, {}
    for racing in (True, False):
        judge = SimulatedJudge(seed=3)
        arena = Arena(
            f"sqlite:///{tmp_path / f'{racing}.db'}",
            "s",
            judge,
            simulated_prompts(60),
            racing=racing,
            seed=3,
        )
        _planted(arena, qualities)
        leaders[racing], calls[racing] = arena.incumbent().trial, judge.calls
    assert leaders[True] == leaders[False] == 3
    assert calls[True] < 0.7 * calls[False]


class _FlakyJudge(PairwiseJudge):
    """Works for ``limit`` requests, then raises, like a judge server going down."""

    def __init__(self, inner: PairwiseJudge, limit: int):
        self.inner, self.limit, self.name, self.calls = inner, limit, inner.name, 0

    def judge(self, requests):
        if self.calls + len(requests) > self.limit:
            raise ConnectionError("judge server went away")
        self.calls += len(requests)
        return self.inner.judge(requests)


@pytest.mark.parametrize("robust", [False, True])
def test_incremental_counts_and_players_give_the_fit_a_fresh_arena_computes(
    tmp_path, monkeypatch, robust
):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    prompts = simulated_prompts(24)
    settings = {"seed": 1, "robust_errors": robust}
    arena = Arena(url, "s", SimulatedJudge(seed=1), prompts, racing=False, **settings)
    _planted(arena, [0.0, 0.5, 1.0])
    arena.fit()
    counted, listed = arena.store.game_counts, arena.store.players
    added, appended = [], []  # min_game_id / min_id of each count and listing
    monkeypatch.setattr(
        arena.store,
        "game_counts",
        lambda *a, **k: added.append(k.get("min_game_id")) or counted(*a, **k),
    )
    monkeypatch.setattr(
        arena.store, "players", lambda *a, **k: appended.append(k.get("min_id")) or listed(*a, **k)
    )
    _planted(arena, [0.0, 0.5, 1.0, 1.5, -0.5])  # trials 3 and 4 are new: counts are added
    assert added and all(m is not None for m in added)
    assert any(m is not None for m in appended)
    fresh = Arena(url, "s", SimulatedJudge(seed=1), prompts, **settings).fit()
    fit = arena.fit()
    assert fit.players == fresh.players
    np.testing.assert_allclose(fit.result.scores, fresh.result.scores, atol=1e-9)
    merged = arena._ledger._counts[2]
    stored = counted(arena.arena_id, by_prompt=robust)
    for name in ("first", "second", "outcome", "count", "prompt_position"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(stored, name))
    # A late commit below the last counted id (as from another worker): the totals disagree
    # with the version, and everything is counted and listed afresh.
    last, total, table = arena._ledger._counts
    arena._ledger._counts = (last, total - 1, table)
    top, known = arena._ledger._players
    arena._ledger._players = (top, known[:-1])
    arena._standings = None
    refit = arena.fit()
    np.testing.assert_allclose(refit.result.scores, fresh.result.scores, atol=1e-9)
    assert refit.players == fresh.players
    assert arena._ledger._counts[1] == int(fresh.records.sum() / 2)


def test_evaluate_interval_is_the_fits_interval(tmp_path):
    arena = Arena(
        f"sqlite:///{tmp_path / 'db.sqlite'}", "s", SimulatedJudge(), simulated_prompts(24)
    )
    _planted(arena, [0.0, 0.5, 1.0])
    texts = [simulated_response(0.7 + 0.1 * i) for i in range(24)]
    result = arena.evaluate(3, 1, texts)
    fit = arena.fit()
    low, high = fit.result.interval(0.95)
    i = fit.index[result.player.id]
    assert (result.ci_low, result.ci_high) == pytest.approx((low[i], high[i]), abs=1e-9)
    assert result.ci_low < result.score < result.ci_high


def test_a_crash_in_the_middle_of_a_match_loses_nothing_and_counts_nothing_twice(tmp_path):
    url, prompts = f"sqlite:///{tmp_path / 'crash.db'}", simulated_prompts(48)
    first = Arena(url, "s", SimulatedJudge(seed=1), prompts, racing=False, batch_size=8)
    first.evaluate(0, 1, [simulated_response(0.0) for _ in prompts])
    flaky = Arena(
        url,
        "s",
        _FlakyJudge(SimulatedJudge(seed=1), limit=20),
        prompts,
        racing=False,
        batch_size=8,
        judge_backoff=0.01,
    )
    with pytest.raises(
        JudgeFailedError, match=r"failed 4 times.*ConnectionError: judge server went away"
    ):
        flaky.evaluate(1, 1, [simulated_response(1.0, text=f"r{i}") for i in range(48)])
    committed = flaky.store.version(flaky.arena_id)[0]
    assert committed == 16  # two batches of 8 made it before the crash
    resumed = Arena(url, "s", SimulatedJudge(seed=1), prompts, racing=False, batch_size=8)
    resumed.evaluate(1, 1, [simulated_response(1.0, text=f"r{i}") for i in range(48)])
    players = {(p.trial, p.step): p for p in resumed.players()}
    assert sum(resumed.match_record(players[1, 1], players[0, 1])) == 48  # each prompt once
    assert resumed.judge_calls == 48 - 16  # the committed games were not judged again


def _incumbent_in_process(url: str, queue) -> None:
    arena = Arena(url, "shared", SimulatedJudge(seed=2), simulated_prompts(30), seed=2)
    queue.put(arena.incumbent().id)


def test_two_processes_on_one_sqlite_study_agree_on_the_incumbent(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    arena = Arena(url, "shared", SimulatedJudge(seed=2), simulated_prompts(30), seed=2)
    _planted(arena, [0.0, 0.8, 1.6, 0.4])
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_incumbent_in_process, args=(url, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    answers = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert answers == [arena.incumbent().id] * 2


def test_swap_judges_both_orders_and_calls_conflicts_ties(tmp_path):
    class OrderBiased(PairwiseJudge):
        name = "always-first"

        def judge(self, requests):
            return [Verdict(winner=1) for _ in requests]

    arena = Arena(
        f"sqlite:///{tmp_path / 'swap.db'}",
        "s",
        OrderBiased(),
        simulated_prompts(20),
        position="swap",
    )
    arena.evaluate(0, 1, [simulated_response(0.0)] * 20)
    result = arena.evaluate(1, 1, [simulated_response(1.0)] * 20)
    assert result.judge_calls == 40
    assert (result.wins, result.ties, result.losses) == (0, 20, 0)


def test_random_order_fits_the_judges_position_bias(tmp_path):
    judge = SimulatedJudge(seed=4, position_bias=0.8, noise=0.0)
    arena = Arena(
        f"sqlite:///{tmp_path / 'pos.db'}", "s", judge, simulated_prompts(80), racing=False
    )
    _planted(arena, [0.0, 0.5, 1.0, 0.2, 0.7])
    fit = arena.fit().result
    assert abs(fit.position_effect - 0.8) < 3 * fit.effect_stderr["position_effect"]


def test_invalid_verdicts_are_stored_and_counted_but_never_games(tmp_path):
    judge = SimulatedJudge(seed=5, invalid_rate=0.3)
    arena = Arena(
        f"sqlite:///{tmp_path / 'bad.db'}", "s", judge, simulated_prompts(40), racing=False
    )
    arena.evaluate(0, 1, [simulated_response(0.0)] * 40)
    result = arena.evaluate(1, 1, [simulated_response(0.5, text=str(i)) for i in range(40)])
    assert result.invalid > 0 and result.games + result.invalid == 40
    assert arena.store.version(arena.arena_id)[0] == result.games


def test_verdicts_are_cached_across_arenas_with_the_same_judge(tmp_path):
    url, prompts = f"sqlite:///{tmp_path / 'cache.db'}", simulated_prompts(20)
    for study in ("a", "b"):
        judge = SimulatedJudge(seed=6)
        arena = Arena(url, study, judge, prompts, racing=False, seed=1)
        _planted(arena, [0.0, 1.0])
    assert judge.calls == 0 and arena.cache_hits == 20


def test_a_study_refuses_another_prompt_set(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Arena(url, "s", SimulatedJudge(), simulated_prompts(10))
    with pytest.raises(PromptSetMismatchError, match="already uses prompt set"):
        Arena(url, "s", SimulatedJudge(), simulated_prompts(11))


def test_the_arenas_rules_are_its_match_settings(tmp_path):
    arena = Arena(
        f"sqlite:///{tmp_path / 'r.db'}",
        "s",
        SimulatedJudge(),
        simulated_prompts(4),
        position="swap",
        seed=np.int64(7),
        batch_size=8,
        racing_alpha=0.05,
        short_match=2,
    )
    assert arena.rules == MatchRules(
        position="swap", seed=7, batch_size=8, racing_alpha=0.05, short_match=2
    )
    assert type(arena.rules.seed) is int  # numpy integers are canonicalised once


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"position": "both"}, "position must be one of"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"min_games": -1}, "min_games must be >= 0"),
        ({"racing_alpha": 1.5}, "racing_alpha must be in"),
        ({"judge_retries": -1}, "judge_retries must be >= 0"),
        ({"judge_backoff": float("nan")}, "judge_backoff must be >= 0"),
        ({"short_match": 0}, "short_match must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_a_bad_match_rule_is_refused_before_the_study_is_bound(tmp_path, rule, message):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    with pytest.raises(ValueError, match=message):
        Arena(url, "s", SimulatedJudge(), simulated_prompts(4), **rule)
    assert Store(url).arena_settings("s") is None  # a valid worker can still bind it
    Arena(url, "s", SimulatedJudge(), simulated_prompts(4))


def test_generations_must_match_the_prompt_set(tmp_path):
    arena = Arena(f"sqlite:///{tmp_path / 'g.db'}", "s", SimulatedJudge(), simulated_prompts(5))
    with pytest.raises(ValueError, match="trial 0 step 1: 4 generations for 5 prompts"):
        arena.evaluate(0, 1, ["a"] * 4)


def test_baseline_anchors_scores_and_is_the_first_opponent(tmp_path):
    prompts = simulated_prompts(20)
    arena = Arena(
        f"sqlite:///{tmp_path / 'b.db'}",
        "s",
        SimulatedJudge(seed=7),
        prompts,
        baseline=("alpaca-default", [simulated_response(0.0)] * 20),
    )
    result = arena.evaluate(0, 1, [simulated_response(2.0)] * 20)
    assert result.opponent.name == "alpaca-default" and result.score > 0
    assert next(r for r in arena.leaderboard() if r.name == "alpaca-default").score == 0.0


def test_finalize_returns_the_best_checkpoint_score_and_records_its_step(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    prompts = simulated_prompts(40)
    arena = Arena(url, "s", SimulatedJudge(seed=8, noise=0.0), prompts, racing=False)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")

    def objective(trial):
        for step, quality in ((1, 0.0), (2, 3.0), (3, 1.0)):  # epoch 2 is best
            arena.evaluate(trial, step, [simulated_response(quality, text=str(step))] * 40)
        return arena.finalize(trial)

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.user_attrs["pandalm_best_step"] == 2
    assert trial.value == pytest.approx(arena.scores()[arena.trial_players(0)[1]], abs=1e-9)


def test_parallel_jobs_share_one_arena(tmp_path):
    run = run_study(f"sqlite:///{tmp_path / 'db.sqlite'}", seed=1, n_trials=8, n_jobs=2)
    assert len(run.study.trials) == 8
    assert run.arena.incumbent() is not None


def _pruning_decisions(tmp_path, curves: list[dict[int, float]], **pruner_options):
    """Run one trial per curve ({step: quality}); returns {(trial, step): should_prune}."""

    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'prune.db'}"
    prompts = simulated_prompts(60)
    arena = Arena(url, "s", SimulatedJudge(seed=9, noise=0.0), prompts, racing=False)
    pruner = JudgePruner(arena, **pruner_options)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize", pruner=pruner)
    decisions = {}

    def objective(trial):
        for step, quality in curves[trial.number].items():
            texts = [simulated_response(quality, text=f"{trial.number}-{step}")] * 60
            result = arena.evaluate(trial, step, texts)
            opponent = result.opponent.step if result.opponent else None
            decisions[trial.number, step] = (trial.should_prune(), opponent)
            if decisions[trial.number, step][0]:
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    study.optimize(objective, n_trials=len(curves))
    return decisions, study


def test_pruner_waits_for_patience_so_a_single_dip_survives(tmp_path):
    # The incumbent is a finished model (step 9): losing to it is not like for like.
    curves = [{9: 3.0}, {1: 1.0, 2: 2.5, 3: -2.0, 4: -2.0}]
    decisions, study = _pruning_decisions(tmp_path, curves, patience=2)
    assert decisions[1, 1] == (False, 9)  # one significant loss is not enough
    assert decisions[1, 2] == (False, 9)  # the recovery resets the run of losses
    assert decisions[1, 4] == (True, 9) and study.trials[1].state == optuna.trial.TrialState.PRUNED


def test_pruner_prunes_at_once_on_a_loss_at_the_same_step(tmp_path):
    leader = {1: 1.0, 2: 2.0, 3: 2.5, 4: 3.0}
    decisions, _ = _pruning_decisions(tmp_path, [leader, {1: -1.0, 2: 0.0}])
    assert decisions[1, 1] == (True, 1)  # it met the leader's own epoch 1, and lost
    # A dip every trial takes at one epoch is a dip on both sides: no prune.
    dipping = {1: 1.0, 2: -1.0, 3: 2.5, 4: 3.0}
    decisions, _ = _pruning_decisions(tmp_path / "dip", [dipping, dict(dipping)])
    assert [decisions[1, s] for s in (1, 2, 3)] == [(False, 1), (False, 2), (False, 3)]
    # same_step=False: every loss needs patience.
    decisions, _ = _pruning_decisions(
        tmp_path / "off", [leader, {1: -1.0, 2: 0.0}], same_step=False
    )
    assert decisions[1, 1] == (False, 1) and decisions[1, 2] == (True, 2)


def test_landscape_dips_recover(tmp_path):
    landscape = Landscape("dips", seed=0)
    params = {"learning_rate": 2e-5, "optimizer": "adamw", "scheduler": "cosine"}
    curve = [landscape.quality(params, e) for e in range(1, 5)]
    assert curve[2] < curve[1] < curve[3]


def test_simulated_judge_is_deterministic_and_seeded():
    request = [JudgeRequest("Q", simulated_response(0.1), simulated_response(0.0))] * 1
    assert SimulatedJudge(seed=1).judge(request) == SimulatedJudge(seed=1).judge(request)
    many = [
        JudgeRequest(f"Q{i}", simulated_response(0.1), simulated_response(0.0)) for i in range(200)
    ]
    winners = {s: [v.winner for v in SimulatedJudge(seed=s).judge(many)] for s in (1, 2)}
    assert winners[1] != winners[2]


def test_a_short_match_stops_a_challenger_behind_but_one_level_plays_every_prompt(tmp_path):
    prompts = simulated_prompts(64)
    arena = Arena(
        f"sqlite:///{tmp_path / 'short.db'}",
        "s",
        SimulatedJudge(seed=5),
        prompts,
        racing=False,
        short_match=16,
    )
    arena.evaluate(0, 1, [simulated_response(1.0, text="leader")] * 64)
    behind = arena.evaluate(1, 1, [simulated_response(-1.0, text="behind")] * 64)
    level = arena.evaluate(2, 1, [simulated_response(1.5, text="level")] * 64)
    assert behind.wins < behind.losses and behind.games == 16 and behind.stopped_early
    assert level.games == 64 and not level.stopped_early


def test_the_contender_floor_ends_a_hopeless_match_but_a_contender_plays_every_prompt(
    tmp_path,
):
    def matches(name, **options):
        arena = Arena(
            f"sqlite:///{tmp_path / name}",
            "s",
            SimulatedJudge(seed=5),
            simulated_prompts(64),
            racing=False,
            **options,
        )
        for trial, quality in enumerate((2.0, 2.0)):
            arena.evaluate(trial, 1, [simulated_response(quality, text=f"top{trial}")] * 64)
        hopeless = arena.evaluate(2, 1, [simulated_response(-2.0, text="hopeless")] * 64)
        contender = arena.evaluate(3, 1, [simulated_response(2.0, text="contender")] * 64)
        return hopeless, contender

    hopeless, contender = matches("floor.db", contender_floor=0.01)
    assert hopeless.games == 16 and hopeless.stopped_early
    assert contender.games == 64 and not contender.stopped_early
    hopeless, _ = matches("off.db")  # off by default
    assert hopeless.games == 64
    with pytest.raises(ValueError, match="contender_floor"):
        Arena("sqlite://", "s", SimulatedJudge(), simulated_prompts(4), contender_floor=1.0)


def test_pruner_on_scores_prunes_a_clear_loser_at_the_same_step_but_not_an_equal(tmp_path):
    leader = {1: 1.0, 2: 2.0, 3: 2.5, 4: 3.0}
    decisions, _ = _pruning_decisions(tmp_path, [leader, {1: -1.0, 2: 0.0}], evidence="scores")
    assert decisions[1, 1] == (True, 1)
    decisions, _ = _pruning_decisions(
        tmp_path / "equal", [leader, dict(leader)], evidence="scores"
    )
    assert not any(pruned for pruned, _ in decisions.values())


def test_rank_rule_prunes_a_trial_far_behind_every_trial_at_its_step_but_not_a_contender(
    tmp_path,
):
    # alpha tiny: the significance rule never fires, so only the rank rule decides.
    curves = [
        {1: 1.0, 2: 2.0},
        {1: 0.9, 2: 1.9},
        {1: 0.8, 2: 1.8},
        {1: -1.5, 2: 3.0},  # last of four at step 1, far behind: pruned before step 2
        {1: 1.0, 2: 2.0},  # level with the leader: plausibly ahead, kept
    ]
    rule = {"alpha": 1e-9, "rank_keep": 0.5, "rank_guard": 0.2, "rank_min_peers": 4}
    decisions, study = _pruning_decisions(tmp_path, curves, **rule)
    assert decisions[3, 1][0] and (3, 2) not in decisions
    assert not decisions[4, 1][0] and not decisions[4, 2][0]
    assert not any(decisions[t, 1][0] for t in range(3))  # fewer than 4 peers, or in the top
    reason = study.pruner.reason(3)  # now, with trial 4 at step 1 as well
    assert reason is not None and (reason.rank, reason.peers, reason.kept) == (5, 5, 3)
    assert str(reason).startswith("pruned at step 1: ranked 5 of 5 trials at this step")
    # The guard keeps even the last one when no chance of being ahead is small enough.
    guarded, _ = _pruning_decisions(tmp_path / "guarded", curves, **{**rule, "rank_guard": 1e-15})
    assert not any(pruned for pruned, _ in guarded.values())
    # Without the rank rule the same trials all run to the end.
    plain, _ = _pruning_decisions(tmp_path / "plain", curves, alpha=1e-9, rank_keep=None)
    assert not any(pruned for pruned, _ in plain.values())


def test_rank_rule_judges_only_a_trials_first_checkpoints(tmp_path):
    field = [{1: 1.0, 2: 2.0, 3: 2.5}, {1: 0.9, 2: 1.9, 3: 2.4}, {1: 0.8, 2: 1.8, 3: 2.3}]
    early = [*field, {1: -1.5, 2: 3.0, 3: 3.5}]  # far behind the field at its first step
    rule = {"alpha": 1e-15, "rank_keep": 0.25}  # rank_checkpoints=2 by default
    decisions, study = _pruning_decisions(tmp_path, early, **rule)
    assert decisions[3, 1][0] and study.pruner.reason(3).test == "rank"
    late = [*field, {1: 1.0, 2: 2.0, 3: -1.5}]  # far behind only at its third checkpoint
    decisions, _ = _pruning_decisions(tmp_path / "late", late, **rule)
    assert not any(pruned for pruned, _ in decisions.values())
    decisions, study = _pruning_decisions(tmp_path / "all", late, **rule, rank_checkpoints=3)
    assert decisions[3, 3][0] and study.pruner.reason(3).test == "rank"
    # Off by default: the significance rule alone never fires at this alpha.
    decisions, _ = _pruning_decisions(tmp_path / "off", early, alpha=1e-15)
    assert not any(pruned for pruned, _ in decisions.values())


def test_rank_rule_guards_against_the_last_one_kept_not_the_leader(tmp_path):
    # Kept: the top half of four, trials 0 and 1. Trial 3 is clearly behind the leader but
    # level with trial 1, the last one kept: it stays.
    curves = [{1: 1.8}, {1: 1.0}, {1: -1.0}, {1: 0.9}]
    rule = {"alpha": 1e-9, "rank_keep": 0.5, "rank_guard": 0.1}
    decisions, study = _pruning_decisions(tmp_path, curves, **rule)
    assert not decisions[3, 1][0]
    standings = study.pruner.arena.standings()
    ranked = sorted(standings.players, key=lambda p: -standings.score(p))
    assert [p.trial for p in ranked][:2] == [0, 1] and ranked[3].trial == 2
