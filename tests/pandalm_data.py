"""PandaLM's data in this repository: the test set ships with the package, PandaLM-7B's
recorded verdicts on it live in tests/data/pandalm/ (both Apache-2.0, notices beside them)."""

from __future__ import annotations

from pathlib import Path

RECORDED_7B = Path(__file__).parent / "data" / "pandalm" / "pandalm-7b-testset-v1.json"
