"""Import the votes people gave in Optuna Dashboard's preferential optimization UI.

The Dashboard stores each comparison as a study system attribute
``preference:values<uuid>`` holding ``[(better trial number, worse trial number), ...]``
(read through the public ``optuna_dashboard.preferential.load_study(...).
get_preferences()``). It says which *trial* a person preferred, not on which prompt, not who
voted, not in which order the two were shown, and never a tie. A preference becomes a vote
only where it maps to two checkpoints and one prompt of the arena:

* each trial of the preferential study names a checkpoint in its user attributes
  ``pandalm_trial`` and ``pandalm_step`` (the checkpoint whose answer the person saw), or,
  when the preferential study *is* the arena's study, the trial's own best checkpoint
  (``pandalm_best_step``, else its last one);
* both trials name the prompt they showed in ``pandalm_prompt`` (a position or a prompt id).

Everything else is counted as not imported, with the reason. The shown order is unknown, so
the better trial is put first in half of the votes (by a hash of the pair), to leave the
fitted first-shown advantage alone; each imported vote is stored under one annotator
(``human:dashboard`` unless told otherwise), so a repeated import adds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from optuna_pandalm.arena import Arena, Player

__all__ = ["DashboardImport", "import_dashboard_votes"]

TRIAL_ATTR, STEP_ATTR, PROMPT_ATTR = "pandalm_trial", "pandalm_step", "pandalm_prompt"


@dataclasses.dataclass(frozen=True)
class DashboardImport:
    """What an import did: ``imported`` new votes, ``repeated`` ones already stored, and
    ``skipped`` preferences with why (one line each)."""

    imported: int
    repeated: int
    skipped: list[str]


def _checkpoint(arena: Arena, trial: Any, own_study: bool) -> Player | str:
    attrs = trial.user_attrs
    if TRIAL_ATTR in attrs and STEP_ATTR in attrs:
        key = (attrs[TRIAL_ATTR], attrs[STEP_ATTR])
        found = [p for p in arena.players() if (p.trial, p.step) == key]
        return found[0] if found else f"no checkpoint trial {key[0]} step {key[1]}"
    if own_study:
        own = arena.trial_players(trial.number)
        best = [p for p in own if p.step == attrs.get("pandalm_best_step")]
        if best or own:
            return (best or own)[-1]
        return f"trial {trial.number} has no checkpoint"
    return f"trial {trial.number} has no {TRIAL_ATTR}/{STEP_ATTR} user attributes"


def import_dashboard_votes(
    arena: Arena, storage: Any, study_name: str, *, annotator: str = "dashboard"
) -> DashboardImport:
    """Record as votes the preferences given in Optuna Dashboard's preferential UI on
    ``study_name`` (see the module docstring for what maps and what cannot).

    Raises:
        KeyError: no such study in ``storage``.
    """
    import optuna
    from optuna_dashboard.preferential import load_study

    # Preferences are only read: a sampler given here spares users Dashboard's default
    # (its preferential GP needs BoTorch, which optuna-dashboard does not install).
    study = load_study(
        study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    own_study = study_name == arena.study_name
    imported = repeated = 0
    skipped: list[str] = []
    for better, worse in study.get_preferences(deepcopy=False):
        pair = f"trial {better.number} over trial {worse.number}"
        sides = [_checkpoint(arena, t, own_study) for t in (better, worse)]
        prompts = {t.user_attrs.get(PROMPT_ATTR) for t in (better, worse)}
        why = next((s for s in sides if isinstance(s, str)), None)
        if why is None and (len(prompts) != 1 or None in prompts):
            why = f"the two trials do not name one prompt in {PROMPT_ATTR}"
        if why is not None:
            skipped.append(f"{pair}: {why}")
            continue
        winner, loser = sides
        assert isinstance(winner, Player) and isinstance(loser, Player)
        if winner.id == loser.id:
            skipped.append(f"{pair}: both are {winner.label}")
            continue
        flip = hashlib.sha256(f"{winner.id}/{loser.id}".encode()).digest()[0] % 2
        first, second, outcome = (loser, winner, "second") if flip else (winner, loser, "first")
        try:
            new = arena.record_vote(prompts.pop(), first, second, outcome, annotator)
        except ValueError as error:
            skipped.append(f"{pair}: {error}")
            continue
        imported += new
        repeated += not new
    return DashboardImport(imported, repeated, skipped)
