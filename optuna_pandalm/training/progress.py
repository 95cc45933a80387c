"""Live progress of a judge-driven search on the terminal, used by ``tune`` and the demo.

Per trial, a tqdm bar over its training steps shows the epoch and the match being played
(games so far of the match's budget, and the record); when the trial ends, one line says
how: complete with its value, or pruned with the loss that pruned it, or failed with why.
Bars are drawn on a terminal only (tqdm's rule); the end-of-trial lines are always written.
Like tqdm, this writes to a stream (stderr by default), never to stdout. tqdm, Optuna and
transformers are imported inside the functions that use them.

Example:
    >>> import io
    >>> from optuna_pandalm import Arena
    >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
    >>> from optuna_pandalm.testing import simulated_response as answer
    >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(8), seed=0)
    >>> out = io.StringIO()
    >>> with TrialProgress(arena, 0, file=out) as progress:
    ...     _ = arena.evaluate(0, 1, [answer(0.0)] * 8)
    ...     _ = progress.completed(arena.finalize(0))
    >>> print(out.getvalue().strip())  # doctest: +ELLIPSIS
    trial 0 complete: value +0.000 at step 1; leader trial 0 step 1 +0.000

What a score is relative to, and why a trial's value stays as it was, is said once, at the
start (:func:`announce_scores`), not on every trial's line.
"""

from __future__ import annotations

import sys
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from optuna_pandalm.attributes import SCORE_ATTR

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from optuna_pandalm.arena import Arena, MatchProgress

__all__ = ["TrialProgress", "announce_scores", "quiet_third_party", "scores_legend"]


def quiet_third_party() -> None:
    """Silence what buries our lines: transformers' warnings and progress bars, Optuna's
    per-trial log (its frozen values, which our end-of-trial line explains), and the
    library warnings a tiny or LoRA model triggers on every trial. Our own loggers
    (``optuna_pandalm.*``) are untouched."""
    import optuna
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )


def scores_legend(arena: Arena) -> str:
    """What the scores on the trial lines are relative to, and what a trial's value is, in
    one line.

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(2))
        >>> print(scores_legend(arena))  # doctest: +ELLIPSIS
        scores: log-odds of winning a game that is not a tie against the anchor (score 0), the first checkpoint judged (the baseline trial's first, ...
    """  # noqa: E501
    anchor = (
        f"the baseline {arena.baseline.label}"
        if arena.baseline is not None
        else "the first checkpoint judged (the baseline trial's first, when there is one)"
    )
    return (
        f"scores: log-odds of winning a game that is not a tie against the anchor (score 0), "
        f"{anchor}. A trial's value is its best checkpoint's score when the trial finished: "
        f"Optuna freezes it (and its {SCORE_ATTR}) while scores move as trials play; "
        "current scores: optuna-pandalm leaderboard."
    )


def announce_scores(arena: Arena, *, file: TextIO | None = None) -> None:
    """Write :func:`scores_legend` once, before the first trial (stderr by default)."""
    from tqdm.auto import tqdm

    tqdm.write(scores_legend(arena), file=file if file is not None else sys.stderr)


class TrialProgress:
    """Progress of one trial: a context manager around its training and ``finalize``.

    Args:
        arena: The study's arena; its matches are followed while the trial runs.
        trial: The Optuna trial (or its number).
        file: Where bars and lines go (stderr by default).
        bar: Draw the bar: ``None`` (default) on a terminal only.

    Add :meth:`trainer_callback` to the ``Trainer``, and return
    ``progress.completed(arena.finalize(trial))`` from the objective. On leaving the block:
    ``optuna.TrialPruned`` gives a "pruned" line with its reason, any other exception a
    "failed" line (the exception propagates either way).
    """

    def __init__(
        self, arena: Arena, trial: Any, *, file: TextIO | None = None, bar: bool | None = None
    ) -> None:
        self.arena = arena
        self.trial = trial
        self.number: int = trial if isinstance(trial, int) else trial.number
        self.file = file
        self.show_bar = bar
        self._bar: Any = None
        self._epoch = ""
        self._match = ""
        self._value: float | None = None

    # --- the block -----------------------------------------------------------------------
    def __enter__(self) -> TrialProgress:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            desc=f"trial {self.number}",
            unit="step",
            file=self._file(),
            disable=None if self.show_bar is None else not self.show_bar,
            leave=False,
            mininterval=0.5,
            dynamic_ncols=True,
        )
        self.arena.matches.observers.append(self._on_match)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._on_match in self.arena.matches.observers:
            self.arena.matches.observers.remove(self._on_match)
        self._bar.close()
        self.write(self.ending(error))

    def completed(self, value: float) -> float:
        """Note the trial's value (what the objective returns) and return it."""
        self._value = value
        return value

    # --- what it says ----------------------------------------------------------------------
    def ending(self, error: BaseException | None) -> str:
        """The end-of-trial line."""
        import optuna

        if isinstance(error, optuna.TrialPruned):
            reason = str(error).removeprefix(f"trial {self.number} ")
            return f"trial {self.number} {reason or 'pruned'}"
        if isinstance(error, KeyboardInterrupt):
            return f"trial {self.number} interrupted"
        if error is not None:
            cause = str(error).splitlines()[0][:200] if str(error) else ""
            return f"trial {self.number} failed: {type(error).__name__}: {cause}".rstrip(": ")
        best = self.arena.best_checkpoint(self.number)
        head = f"trial {self.number} complete"
        if self._value is not None:
            where = f" at step {best.step}" if best is not None else ""
            head += f": value {self._value:+.3f}{where}"  # what it means: scores_legend
        leader = self.arena.incumbent()
        if leader is not None:
            head += f"; leader {leader.label} {self.arena.standings().score(leader):+.3f}"
        return head

    def write(self, line: str) -> None:
        """A line above the bar (or plain, when no bar is drawn)."""
        from tqdm.auto import tqdm

        tqdm.write(line, file=self._file())

    def _file(self) -> TextIO:
        return self.file if self.file is not None else sys.stderr

    def _show(self) -> None:
        parts = [p for p in (self._epoch, self._match) if p]
        self._bar.set_postfix_str(" | ".join(parts), refresh=False)
        self._bar.refresh()

    def _on_match(self, match: MatchProgress) -> None:
        if match.challenger.trial != self.number and match.opponent.trial != self.number:
            return
        state = "played" if match.done else "playing"
        self._match = (
            f"{state} {match.challenger.label} vs {match.opponent.label}: "
            f"{match.games}/{match.budget} games, {match.wins}-{match.ties}-{match.losses}"
        )
        self._show()

    # --- training --------------------------------------------------------------------------
    def trainer_callback(self) -> TrainerCallback:
        """A ``TrainerCallback`` moving the bar with training steps and epochs; put it before
        ``JudgeCallback`` so the bar says when a checkpoint's answers are being generated."""
        from transformers import TrainerCallback

        progress = self

        class _StepProgress(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                progress._bar.reset(total=state.max_steps)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                progress._bar.update(state.global_step - progress._bar.n)

            def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                epoch = int(state.epoch or 0) + 1
                progress._epoch = f"epoch {epoch}/{int(args.num_train_epochs)}"
                progress._show()

            def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                progress._match = f"step {state.global_step}: generating answers"
                progress._show()

        return _StepProgress()
