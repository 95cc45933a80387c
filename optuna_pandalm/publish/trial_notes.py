"""The Optuna Dashboard note of a finished trial: its matches, why it was pruned, reasons.

Every finished trial gets one, complete or pruned, written once after it finished. Optuna
freezes a finished trial, so the note says what its frozen figures mean: the value and the
``pandalm_score`` user attribute are its score as of its finish; current scores are on the
study's Top page in Optuna Dashboard (the leaderboard figure, ``pandalm_best_now`` in Study
User Attributes), in ``optuna-pandalm leaderboard`` and in the report. Generated text (answers,
the judge's reasons) is HTML-escaped, and the judge's "Response 1 / Response 2" are told
from the trial's side: "this trial's answer" and "the incumbent's answer".
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import PRUNED_ATTR, SCORE_ATTR
from optuna_pandalm.outcomes import Side, side

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from optuna_pandalm.arena import Arena, JudgeAgreement, Player, Standings

__all__ = ["finished_trial_note", "from_trials_side", "trial_note"]

_RESPONSE = re.compile(r"\b([Rr])esponse\s*([12])\b")
_EXAMPLES = 3
_REASON_CHARS = 300
_RESULT = {Side.WIN: "won", Side.TIE: "tie", Side.LOSS: "lost"}
_CURRENT = (  # where Optuna Dashboard 0.21 shows them: its Top page, not a trial's page
    "current scores: the study's Top page, in the figure 'Judge leaderboard' and the study "
    "user attribute `pandalm_best_now` (Study User Attributes, below the Best Trial card); "
    "`optuna-pandalm leaderboard`; the report"
)
NO_REASON = "no reason recorded (pruned without `Arena.finalize`)"


def from_trials_side(reason: str, *, trial_shown_first: bool) -> str:
    """The judge's reason with "Response 1/2" named from the trial's side.

    Example:
        >>> from_trials_side("Response 2 is better: response 1 drops a letter.",
        ...                  trial_shown_first=False)
        "This trial's answer is better: the incumbent's answer drops a letter."
    """

    def name(match: re.Match[str]) -> str:
        ours = (match.group(2) == "1") == trial_shown_first
        words = "this trial's answer" if ours else "the incumbent's answer"
        return words[0].upper() + words[1:] if match.group(1) == "R" else words

    return _RESPONSE.sub(name, reason)


def _game_line(arena: Arena, player: Player, game: dict[str, Any]) -> str:
    first = game["first_player_id"] == player.id
    result = _RESULT[side(int(game["outcome"]), shown_first=first)]
    ours = game["first_text"] if first else game["second_text"]
    theirs = game["second_text"] if first else game["first_text"]
    instruction = arena.prompts[int(game["prompt_position"])].instruction
    reason = from_trials_side(str(game["reason"])[:_REASON_CHARS], trial_shown_first=first)
    return (
        f"- prompt {game['prompt_position']} ({html.escape(instruction[:60].rstrip('.'))}), "
        f"**{result}**: "
        f"this trial's answer `{html.escape(ours[:60])}`, "
        f"the incumbent's answer `{html.escape(theirs[:60])}`"
        + (f". Judge: {html.escape(reason)}" if reason else "")
    )


def _examples(arena: Arena, player: Player, opponent: Player, *, losses_first: bool) -> list[str]:
    """A few games of ``player`` against ``opponent``, its losses first when asked."""
    games = [
        g
        for g in arena.game_examples(player, limit=50)
        if opponent.id in (g["first_player_id"], g["second_player_id"])
    ]

    def lost(game: dict[str, Any]) -> bool:
        first = game["first_player_id"] == player.id
        return side(int(game["outcome"]), shown_first=first) is Side.LOSS

    if losses_first:
        games.sort(key=lambda g: not lost(g))
    return [_game_line(arena, player, g) for g in games[:_EXAMPLES]]


def trial_note(
    arena: Arena,
    number: int,
    *,
    score: float | None,
    pruned: str | None = None,
    standings: Standings | None = None,
    agreement: JudgeAgreement | None = None,
) -> str:
    """The note of finished trial ``number``: ``score`` is its best checkpoint's score as
    of its finish (its ``pandalm_score``; Optuna's value when it completes); ``pruned``
    says which loss pruned it. ``standings`` and ``agreement``: the arena's, when the
    caller has them already (publishing computes them once for everything it writes)."""
    players = arena.trial_players(number)
    state = "pruned" if pruned else "complete"
    lines = [f"### Trial {number}: {state}", ""]
    if pruned:
        lines += [f"**Why:** {html.escape(pruned)}.", ""]
    if score is not None and not pruned:
        lines += [
            f"**Value {score:+.3f}** is this trial's judge score when it completed (log-odds "
            f"against the anchor), as is its user attribute `{SCORE_ATTR}`. Optuna freezes "
            f"both; scores move as other trials play ({_CURRENT}).",
            "",
        ]
    elif score is not None:
        lines += [
            f"Score {score:+.3f} when pruned (its user attribute `{SCORE_ATTR}`, frozen; "
            f"{_CURRENT}).",
            "",
        ]
    if score is not None:
        now = standings if standings is not None else arena.standings()
        lines += [f"What a score means now: {now.score_meaning()}", ""]
    lines += ["Matches against the incumbent (W-T-L from this trial's side):", ""]
    last: tuple[Player, Player] | None = None
    for player in players:
        for opponent in arena.incumbent_opponents(player):
            wins, ties, losses = arena.match_record(player, opponent)
            lines.append(
                f"- step {player.step} vs {html.escape(opponent.label)}: {wins}-{ties}-{losses}"
            )
            last = (player, opponent)
    if last is not None:
        player, opponent = last
        examples = _examples(arena, player, opponent, losses_first=pruned is not None)
        if examples:
            lines += [
                "",
                f"Games at step {player.step} vs {html.escape(opponent.label)}:",
                "",
                *examples,
            ]
    agreement = agreement if agreement is not None else arena.judge_agreement()
    lines += ["", f"People's votes: {html.escape(agreement.summary())}."]
    return "\n".join(lines)


def finished_trial_note(
    arena: Arena,
    trial: FrozenTrial,
    *,
    standings: Standings | None = None,
    agreement: JudgeAgreement | None = None,
) -> str | None:
    """The note of a finished trial as Optuna froze it: complete, or pruned with the reason
    recorded while it ran (``pandalm_pruned``; :data:`NO_REASON` when the objective pruned
    it without ``Arena.finalize``), with its score as of its finish (``pandalm_score``).
    ``None`` for a failed trial and for one without a checkpoint in the arena.
    ``standings``, ``agreement``: as in :func:`trial_note`."""
    from optuna.trial import TrialState

    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return None
    if not arena.trial_players(trial.number):
        return None
    pruned = None
    if trial.state == TrialState.PRUNED:
        pruned = str(trial.user_attrs.get(PRUNED_ATTR) or NO_REASON)
    return trial_note(
        arena,
        trial.number,
        score=trial.user_attrs.get(SCORE_ATTR),
        pruned=pruned,
        standings=standings,
        agreement=agreement,
    )
