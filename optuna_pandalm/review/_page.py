"""The review page's HTML: every generated or user-given text goes through ``html.escape``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

from optuna_pandalm.arena import JudgeAgreement, LeaderboardRow
from optuna_pandalm.prompts import Prompt
from optuna_pandalm.review._effects import CHOICES, Stake, VoteEffect

__all__ = ["name_page", "next_url", "task_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 1.5rem auto;
       padding: 0 1rem; color: #1d1d1f; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
pre { white-space: pre-wrap; word-wrap: break-word; background: #f5f5f7; padding: .8rem;
      border-radius: 6px; min-height: 4rem; }
button { font-size: 1rem; padding: .5rem 1.2rem; margin-right: .5rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.muted { color: #6e6e73; }
#stakes, #last-vote { background: #f5f5f7; border-radius: 6px; padding: .4rem 1rem; }
#last-vote { border-left: 4px solid #1f77b4; list-style: none; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def name_page(study: str) -> str:
    """Asks for the annotator's name (no accounts: the name is what the vote is stored
    under)."""
    return _document(
        f"Review {study}",
        f"<h1>Review study {_e(study)}</h1>"
        "<p>Compare two answers to one prompt and say which is better. Your votes are stored "
        "under your name and join the judge's verdicts.</p>"
        "<form method='get' action='/'><label>Your name "
        "<input name='name' id='name' required maxlength='64'></label> "
        "<button type='submit' id='start'>Start</button></form>",
    )


def _leaderboard(rows: Sequence[LeaderboardRow], agreement: JudgeAgreement) -> str:
    lines = "".join(
        f"<tr><td>{_e(row.label)}</td><td>{row.score:+.3f}</td><td>{row.p_best:.3f}</td>"
        f"<td>{row.games}</td><td class='human-votes'>{row.human_votes}</td></tr>"
        for row in rows
    )
    return (
        "<h2>Leaderboard</h2><table id='leaderboard'><tr><th>player</th><th>score</th>"
        f"<th>P(best)</th><th>games</th><th>human votes</th></tr>{lines}</table>"
        f"<p id='agreement'>{_e(agreement.summary().capitalize())}.</p>"
    )


def task_page(
    *,
    study: str,
    name: str,
    prompt: Prompt | None,
    answers: tuple[str, str] | None,
    task_id: str,
    csrf: str,
    rows: Sequence[LeaderboardRow],
    agreement: JudgeAgreement,
    voted: int,
    stakes: Sequence[Stake] = (),
    last_vote: VoteEffect | None = None,
) -> str:
    """One review (prompt, answers A and B, the four choices, what each vote would
    change) above the leaderboard; when ``prompt`` is ``None`` there is nothing left to
    review. ``last_vote``: what the person's previous vote did, named, on top."""
    head = (
        f"<h1>Review study {_e(study)}</h1>"
        f"<p class='muted'>Reviewing as <b id='annotator'>{_e(name)}</b> "
        f"(<a href='/'>not you?</a>); your votes in this session: "
        f"<span id='voted'>{voted}</span></p>"
    )
    if last_vote is not None:
        lines = "".join(f"<li>{_e(line)}</li>" for line in last_vote.sentences())
        head += f"<ul id='last-vote'>{lines}</ul>"
    if prompt is None or answers is None:
        body = "<p id='done'>Nothing left to review among the contenders. Thank you.</p>"
    else:
        given = f"<h3>Input</h3><pre>{_e(prompt.input)}</pre>" if prompt.input else ""
        choices = "".join(
            f"<button type='submit' name='choice' value='{value}' id='{value}'>{label}</button>"
            for value, label in (*CHOICES, ("skip", "Skip"))
        )
        changes = "".join(f"<li>{_e(stake.sentence())}</li>" for stake in stakes)
        if changes:
            changes = (
                "<div id='stakes'><p>What your vote would change (scores refitted with it, "
                "before you choose; which answer is whose is shown after):</p>"
                f"<ul>{changes}</ul></div>"
            )
        body = (
            f"<h2>Prompt</h2><pre id='instruction'>{_e(prompt.instruction)}</pre>{given}"
            "<div class='answers'>"
            f"<div><h3>Answer A</h3><pre id='answer-a'>{_e(answers[0])}</pre></div>"
            f"<div><h3>Answer B</h3><pre id='answer-b'>{_e(answers[1])}</pre></div></div>"
            "<form method='post' action='/vote'>"
            f"<input type='hidden' name='csrf' value='{_e(csrf)}'>"
            f"<input type='hidden' name='task' value='{_e(task_id)}'>"
            f"<input type='hidden' name='name' value='{_e(name)}'>"
            f"<p>{choices}</p></form>{changes}"
        )
    return _document(f"Review {study}", head + body + _leaderboard(rows, agreement))


def next_url(name: str) -> str:
    """Where the page goes after a vote: the next review for the same person."""
    return "/?name=" + quote(name, safe="")
