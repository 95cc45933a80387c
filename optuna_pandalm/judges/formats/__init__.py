"""Judge formats: how each judge model of 2023-2026 is asked and how its answer is read.

:data:`FORMATS` maps a name to a :class:`JudgeFormat`; ``FORMATS[name].parse(text)`` returns a
:class:`~optuna_pandalm.Verdict` (winner in the shown order; unreadable text is an invalid
verdict, never an exception). One module per format; ``docs/judges.md`` gives each source,
licence, prompt, verdict, ties, strengths, likelihood labels and reference.

Example:
    >>> from optuna_pandalm.judges import FORMATS
    >>> sorted(FORMATS)
    ['arena_hard', 'judgelm', 'mtbench', 'pandalm', 'prometheus2']
    >>> FORMATS["arena_hard"].parse("My verdict: [[B>>A]]").winner
    2
"""

from __future__ import annotations

from optuna_pandalm.judges.formats._arena_hard import ArenaHardFormat
from optuna_pandalm.judges.formats._format import JudgeFormat, Message
from optuna_pandalm.judges.formats._judgelm import JudgeLMFormat
from optuna_pandalm.judges.formats._mtbench import MTBenchFormat
from optuna_pandalm.judges.formats._pandalm import PandaLMFormat
from optuna_pandalm.judges.formats._prometheus2 import Prometheus2Format

__all__ = [
    "FORMATS",
    "ArenaHardFormat",
    "JudgeFormat",
    "JudgeLMFormat",
    "MTBenchFormat",
    "Message",
    "PandaLMFormat",
    "Prometheus2Format",
]

FORMATS: dict[str, JudgeFormat] = {
    form.name: form
    for form in (
        PandaLMFormat(),
        Prometheus2Format(),
        MTBenchFormat(),
        ArenaHardFormat(),
        JudgeLMFormat(),
    )
}
"""Every format by name."""
