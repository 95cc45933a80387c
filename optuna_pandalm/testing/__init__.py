"""A simulated judge and synthetic tuning landscapes, to test judge-driven searches.

Like ``optuna.testing``, this is public: users can check their own study setup (sampler,
pruner, budgets) against a known truth before spending GPU hours.

* :class:`SimulatedJudge` reads a latent quality written into each response (see
  :func:`simulated_response`) and answers like a noisy LLM judge: Davidson ties, a bias
  towards the first-shown response, a bias towards longer responses, per-prompt difficulty,
  errors of its own and invalid outputs, all configurable. It is deterministic: the same
  request always gets the same verdict (as a cached judge would), and a seed changes every
  verdict. :meth:`SimulatedJudge.pandalm_7b` is calibrated to PandaLM-7B's verdicts on
  PandaLM's human-annotated test set (see :mod:`optuna_pandalm.testing.calibration`).
* :class:`Landscape` maps PandaLM's search space (learning rate 2e-6..2e-4, optimizer,
  scheduler, LoRA rank, warmup, weight decay; epochs as checkpoints) to a true quality per
  checkpoint, with shapes that trouble searches: a narrow learning-rate optimum,
  interacting parameters, dips that recover, a flat plateau; and ``verbose``, where high
  learning rates make a checkpoint longer-winded and worse, epoch after epoch (to show
  length control).

Example:
    >>> from optuna_pandalm import JudgeRequest
    >>> judge = SimulatedJudge(seed=0, position_bias=0.0, tie_strength=0.0, noise=0.0)
    >>> good, bad = simulated_response(2.0), simulated_response(-2.0)
    >>> judge.judge([JudgeRequest("Q", good, bad)])[0].winner
    1
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.pandalm import LABELS
from optuna_pandalm.prompts import Prompt

__all__ = [
    "LANDSCAPES",
    "PANDALM_7B",
    "Landscape",
    "SimulatedJudge",
    "ladder_games",
    "simulated_prompts",
    "simulated_response",
    "simulated_verdicts",
]

_QUALITY = re.compile(r"\[quality=([-+0-9.eE]+)\]")


def simulated_response(quality: float, *, length: int = 40, text: str = "answer") -> str:
    """A response carrying its latent quality (log-odds scale), padded to ``length`` chars."""
    head = f"[quality={quality:+.6f}] {text}"
    return head + " " + "x" * max(0, length - len(head) - 1)


def response_quality(response: str) -> float | None:
    """The latent quality written in a simulated response, or ``None``."""
    match = _QUALITY.search(response)
    return float(match.group(1)) if match else None


def simulated_prompts(n: int = 40, *, seed: int = 0) -> list[Prompt]:
    """``n`` distinct prompts with references (for judges that need them)."""
    return [
        Prompt(f"Simulated task {i} (seed {seed}).", reference=f"reference {i}") for i in range(n)
    ]


def _uniform(*parts: Any) -> float:
    """A deterministic uniform(0, 1) number from the parts."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return (int.from_bytes(digest.digest(), "big") + 0.5) / 2**64


def _normal(*parts: Any) -> float:
    """A deterministic standard normal number from the parts (Box-Muller)."""
    a, b = _uniform(*parts, "a"), _uniform(*parts, "b")
    return math.sqrt(-2 * math.log(a)) * math.cos(2 * math.pi * b)


def simulated_verdicts(
    quality_1: NDArray[np.float64],
    quality_2: NDArray[np.float64],
    *,
    length_ratio: NDArray[np.float64] | None = None,
    difficulty: NDArray[np.float64] | None = None,
    uniforms: NDArray[np.float64],
    invalid_uniforms: NDArray[np.float64] | None = None,
    position_bias: float = 0.3,
    length_bias: float = 0.0,
    tie_strength: float = 0.5,
    invalid_rate: float = 0.0,
) -> NDArray[np.int64]:
    """Vectorised verdicts: 0 tie, 1, 2, or -1 invalid, one per row.

    ``P(1) : P(2) : P(tie) = exp(d/2) : exp(-d/2) : nu`` with
    ``d = (q1 - q2) * difficulty + position_bias + length_bias * log(length_ratio)``.
    """
    delta = np.asarray(quality_1, dtype=float) - np.asarray(quality_2, dtype=float)
    if difficulty is not None:
        delta = delta * difficulty
    delta = delta + position_bias
    if length_ratio is not None:
        delta = delta + length_bias * np.log(length_ratio)
    u = delta / 2
    top = np.maximum(np.abs(u), math.log(max(tie_strength, 1e-300)))
    p1, p2, p0 = np.exp(u - top), np.exp(-u - top), tie_strength * np.exp(-top)
    total = p1 + p2 + p0
    draw = np.asarray(uniforms) * total
    winner = np.where(draw < p1, 1, np.where(draw < p1 + p2, 2, 0))
    if invalid_rate > 0 and invalid_uniforms is not None:
        winner = np.where(np.asarray(invalid_uniforms) < invalid_rate, -1, winner)
    return winner


def ladder_games(
    n_players: int, *, seed: int, games: int = 16
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """``(first, second, outcome)`` of games shaped like a study's: each new checkpoint plays
    ``games`` games against one of the five strongest before it (strengths ~ N(0, 1)), so
    the comparison graph is nearly a tree and most players have few games.

    Example:
        >>> first, second, outcome = ladder_games(10, seed=0)
        >>> len(first), int(max(first.max(), second.max()))
        (144, 9)
    """
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0, 1, n_players)
    first, second = [], []
    for new in range(1, n_players):
        rival = int(rng.choice(np.argsort(-strengths[:new])[:5]))
        for coin in rng.random(games) < 0.5:
            first.append(new if coin else rival)
            second.append(rival if coin else new)
    first_a, second_a = np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)
    outcome = simulated_verdicts(
        strengths[first_a], strengths[second_a], uniforms=rng.random(len(first_a))
    )
    return first_a, second_a, outcome


class SimulatedJudge(PairwiseJudge):
    """A fake judge with known behaviour, for tests and benchmarks (not for real studies).

    The judge sees the difference ``d = q1 - q2`` of the two responses' latent qualities as
    ``d * difficulty * (1 + relative_noise * z) + noise * e``, adds ``position_bias`` and
    ``length_bias * log(len1 / len2)``, and answers with Davidson's probabilities for that
    log-odds (ties with ``tie_strength``). ``z`` belongs to the pair of responses (the same
    in both shown orders: the judge's own opinion), ``e`` to the shown order.

    Args:
        seed: Changes every verdict; the same seed and request give the same verdict.
        noise: Standard deviation of the judge's per-request error on the quality
            difference (log-odds); it changes when the two responses trade places.
        relative_noise: Standard deviation of the judge's error relative to the difference
            (the same in both orders): it misjudges the direction of a clear difference with
            probability ``Phi(-1 / relative_noise)``, and near-equal responses stay near-equal.
        position_bias: Log-odds added to the first-shown response.
        length_bias: Log-odds per unit of ``log(len(response 1) / len(response 2))``.
        tie_strength: Davidson's ``nu``; between equals P(tie) = nu / (2 + nu).
        difficulty_spread: Per-prompt multiplier on quality differences is
            ``exp(N(0, difficulty_spread))``: some prompts separate models, some do not.
        invalid_rate: Share of invalid outputs (0..1).
        favour: A bias on configuration families: log-odds added to the quality of any
            response whose text contains the key (for example ``{"optimizer=sgd": 1.0}``
            when generations name their configuration), for studies where the judge is
            wrong on one family and people's votes must correct it.
        calls: Counts requests judged (cache hits never reach a judge).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        noise: float = 0.5,
        position_bias: float = 0.3,
        length_bias: float = 0.0,
        tie_strength: float = 0.5,
        difficulty_spread: float = 0.3,
        invalid_rate: float = 0.0,
        relative_noise: float = 0.0,
        favour: Mapping[str, float] | None = None,
    ) -> None:
        if not 0 <= invalid_rate < 1:
            raise ValueError(f"invalid_rate must be in [0, 1), got {invalid_rate}")
        self.seed = seed
        self.noise = noise
        self.position_bias = position_bias
        self.length_bias = length_bias
        self.tie_strength = tie_strength
        self.difficulty_spread = difficulty_spread
        self.invalid_rate = invalid_rate
        self.relative_noise = relative_noise
        self.favour = dict(favour or {})
        self.calls = 0
        self.name = (
            f"simulated:seed={seed}:noise={noise}:position={position_bias}:"
            f"length={length_bias}:tie={tie_strength}:difficulty={difficulty_spread}:"
            f"invalid={invalid_rate}"
        ) + (f":relative={relative_noise}" if relative_noise else "")
        if self.favour:
            self.name += ":favour=" + ",".join(f"{k}={v}" for k, v in sorted(self.favour.items()))

    def _favour(self, response: str) -> float:
        return sum(bias for marker, bias in self.favour.items() if marker in response)

    @classmethod
    def pandalm_7b(cls, *, seed: int = 0, **overrides: float) -> SimulatedJudge:
        """A judge with PandaLM-7B's error profile on PandaLM's human test set.

        Fitted by :func:`optuna_pandalm.testing.calibration.calibrate_simulated_judge` on the 999
        human-labelled pairs and PandaLM-7B's recorded verdicts (3-way accuracy 0.668, ties
        10.7%, 17% of verdicts flipping when the responses trade places, a 0.17 log-odds
        pull per unit log length ratio beyond the human label). A test refits it from the
        data and compares. Between near-equal responses it says "Tie" 45% of the time, as
        PandaLM-7B does between LoRA and full fine-tuning of one model (41-55%, its
        Table 9).
        """
        settings: dict[str, Any] = {**PANDALM_7B, **overrides}
        return cls(seed=seed, **settings)

    def difficulty(self, instruction: str) -> float:
        """The per-prompt multiplier on quality differences (deterministic per seed)."""
        return math.exp(
            self.difficulty_spread
            * math.sqrt(-2 * math.log(_uniform(self.seed, instruction, "d-a")))
            * math.cos(2 * math.pi * _uniform(self.seed, instruction, "d-b"))
        )

    def draw(
        self,
        quality_1: NDArray[np.float64],
        quality_2: NDArray[np.float64],
        *,
        difficulty: NDArray[np.float64] | float = 1.0,
        length_ratio: NDArray[np.float64] | None = None,
        rng: np.random.Generator,
    ) -> NDArray[np.int64]:
        """Vectorised verdicts from the same model as :meth:`judge` (0 tie, 1, 2, -1 invalid),
        with fresh randomness from ``rng`` instead of hashes of the texts: for simulations
        too large for text requests (a round robin of 537,200 games). Calls are counted."""
        q1, q2 = np.asarray(quality_1, dtype=float), np.asarray(quality_2, dtype=float)
        n = np.broadcast(q1, q2).shape
        delta = (q1 - q2) * difficulty * (1 + self.relative_noise * rng.standard_normal(n))
        self.calls += int(np.prod(n))
        return simulated_verdicts(
            delta + self.noise * rng.standard_normal(n),
            np.zeros(n),
            length_ratio=length_ratio,
            uniforms=rng.random(n),
            invalid_uniforms=rng.random(n),
            position_bias=self.position_bias,
            length_bias=self.length_bias,
            tie_strength=self.tie_strength,
            invalid_rate=self.invalid_rate,
        )

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += len(requests)
        verdicts = []
        for r in requests:
            q1, q2 = response_quality(r.response_1), response_quality(r.response_2)
            if q1 is None or q2 is None:
                verdicts.append(Verdict(winner=None, raw="no [quality=...] marker"))
                continue
            q1, q2 = q1 + self._favour(r.response_1), q2 + self._favour(r.response_2)
            key = (self.seed, r.instruction, r.input, r.response_1, r.response_2)
            # Box-Muller from deterministic uniforms: the judge's error this time (order
            # dependent) and its opinion of the pair (the same in both orders).
            error = self.noise * _normal(*key, "noise")
            pair = (self.seed, r.instruction, r.input, *sorted((r.response_1, r.response_2)))
            opinion = 1 + self.relative_noise * _normal(*pair, "opinion")
            delta = (q1 - q2) * self.difficulty(r.instruction) * opinion
            ratio = max(len(r.response_1), 1) / max(len(r.response_2), 1)
            label = int(
                simulated_verdicts(
                    np.array([delta + error]),
                    np.array([0.0]),
                    length_ratio=np.array([ratio]),
                    uniforms=np.array([_uniform(*key, "outcome")]),
                    invalid_uniforms=np.array([_uniform(*key, "invalid")]),
                    position_bias=self.position_bias,
                    length_bias=self.length_bias,
                    tie_strength=self.tie_strength,
                    invalid_rate=self.invalid_rate,
                )[0]
            )
            if label < 0:
                verdicts.append(Verdict(winner=None, raw="simulated garbage"))
                continue
            text = LABELS[label]
            verdicts.append(
                Verdict(
                    winner=label,
                    reason=f"simulated: qualities {q1:+.3f} vs {q2:+.3f}",
                    raw=f"{text}\n\n### Reason: simulated",
                )
            )
        return verdicts


@dataclasses.dataclass(frozen=True)
class Landscape:
    """True quality of a checkpoint as a function of hyperparameters and epoch.

    ``quality(params, epoch)`` is in log-odds against a reference model (0). ``shape`` is
    one of :data:`LANDSCAPES`. ``seed`` moves the optimum a little between instances.
    ``generations(params, epoch, prompts)`` writes simulated responses whose per-prompt
    quality scatters around the checkpoint's quality (sd ``prompt_noise``); their lengths
    scatter around 200 characters with log-sd ``length_spread`` (0: all 40 characters),
    unrelated to quality, so a judge's length bias is noise, except on the ``verbose``
    shape (not in :data:`LANDSCAPES`, which benchmarks rotate through): there learning rates
    above a broad optimum make responses up to ``e**1.5`` (4.5) times longer by the last
    epoch and cost 0.5 log-odds of quality per unit of log length, so a judge that prefers
    longer answers ranks those checkpoints too high.
    """

    shape: str = "narrow_lr"
    seed: int = 0
    prompt_noise: float = 0.5
    epochs: int = 4
    length_spread: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in (*LANDSCAPES, "verbose"):
            raise ValueError(
                f"shape must be one of {(*LANDSCAPES, 'verbose')}, got {self.shape!r}"
            )

    @staticmethod
    def suggest(trial: Any) -> dict[str, Any]:
        """Sample PandaLM's search space with an Optuna trial."""
        return {
            "learning_rate": trial.suggest_float("learning_rate", 2e-6, 2e-4, log=True),
            "optimizer": trial.suggest_categorical("optimizer", ["adamw", "sgd"]),
            "scheduler": trial.suggest_categorical("scheduler", ["cosine", "linear"]),
            "lora_rank": trial.suggest_categorical("lora_rank", [4, 8, 16, 32]),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.1),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        }

    def _optimum(self) -> float:
        rng = np.random.default_rng(self.seed)
        return math.log10(2e-5) + rng.uniform(-0.3, 0.3)

    def quality(self, params: Mapping[str, Any], epoch: int) -> float:
        """True quality (log-odds) of the checkpoint after ``epoch`` epochs (1-based)."""
        x = math.log10(params["learning_rate"]) - self._optimum()
        adam = params.get("optimizer", "adamw") == "adamw"
        cosine = params.get("scheduler", "cosine") == "cosine"
        rank: int = params.get("lora_rank", 8)
        warmup: float = params.get("warmup_ratio", 0.05)
        decay: float = params.get("weight_decay", 0.0)
        progress = epoch / self.epochs
        if self.shape == "verbose":
            # A broad optimum; above it each unit of log length costs 0.5 log-odds.
            base = math.exp(-((x / 0.6) ** 2)) * (1 - math.exp(-3 * progress))
            return base - 0.5 * self.verbosity(params, epoch)
        if self.shape == "narrow_lr":
            base = 2.0 * math.exp(-((x / 0.25) ** 2)) - 0.5 * x**2
            base += (0.3 if adam else -0.6) + (0.1 if cosine else 0.0)
            return base * (1 - math.exp(-3 * progress))
        if self.shape == "interacting":
            # SGD wants a ten times larger learning rate; rank and lr trade off.
            shift = 0.0 if adam else 1.0
            base = 1.5 * math.exp(-(((x - shift) / 0.4) ** 2))
            base += 0.2 * math.log2(rank / 8) * (-1 if x > shift else 1)
            return base + 0.3 * warmup * 10 * (1 if cosine else -1) - decay
        if self.shape == "dips":
            base = 1.6 * math.exp(-((x / 0.4) ** 2)) + (0.3 if adam else -0.3)
            curve = base * progress
            if epoch == 3:
                curve -= 0.8 * abs(base)  # a dip that recovers (PandaLM Appendix J)
            if epoch == self.epochs and x > 0.3:
                curve -= 0.5  # overfitting at high learning rates
            return curve
        # plateau: almost everything is equally good; only the worst corner is poor.
        return 0.1 * math.tanh(-x) + (0.0 if adam else -0.1) - (1.0 if x > 0.8 else 0.0)

    def verbosity(self, params: Mapping[str, Any], epoch: int) -> float:
        """Log of how many times longer than usual the checkpoint's responses are (0 except
        on the ``verbose`` shape, where it grows with the learning rate above the optimum and
        with the epoch, up to 1.5).

        Example:
            >>> verbose = Landscape("verbose")
            >>> calm, hot = {"learning_rate": 1e-5}, {"learning_rate": 2e-4}
            >>> verbose.verbosity(calm, 4), verbose.verbosity(hot, 4) > 1
            (0.0, True)
        """
        if self.shape != "verbose":
            return 0.0
        x = math.log10(params["learning_rate"]) - self._optimum()
        return 1.5 * min(max(x / 0.6, 0.0), 1.0) * epoch / self.epochs

    def best_quality(self) -> float:
        """The best quality over a dense grid of the space and all epochs (for regret)."""
        best = -math.inf
        for lr in np.logspace(math.log10(2e-6), math.log10(2e-4), 201):
            for optimizer in ("adamw", "sgd"):
                for scheduler in ("cosine", "linear"):
                    for rank in (4, 8, 16, 32):
                        for warmup in (0.0, 0.1):
                            params = {
                                "learning_rate": lr,
                                "optimizer": optimizer,
                                "scheduler": scheduler,
                                "lora_rank": rank,
                                "warmup_ratio": warmup,
                                "weight_decay": 0.0,
                            }
                            for epoch in range(1, self.epochs + 1):
                                best = max(best, self.quality(params, epoch))
        return best

    def response_qualities(
        self, params: Mapping[str, Any], epoch: int, prompts: Sequence[Prompt], *, key: Any = 0
    ) -> NDArray[np.float64]:
        """Latent quality of the checkpoint's response to each prompt (those of
        :meth:`generations`)."""
        quality = self.quality(params, epoch)
        return np.array(
            [
                quality + self.prompt_noise * _normal(self.seed, key, epoch, i, prompt.instruction)
                for i, prompt in enumerate(prompts)
            ]
        )

    def response_lengths(
        self,
        epoch: int,
        prompts: Sequence[Prompt],
        *,
        key: Any = 0,
        params: Mapping[str, Any] | None = None,
    ) -> NDArray[np.int64]:
        """Length in characters of each response of :meth:`generations` (of the checkpoint
        with ``params``, which only the ``verbose`` shape needs)."""
        verbosity = 0.0 if params is None else self.verbosity(params, epoch)
        if self.length_spread == 0 and self.shape != "verbose":
            return np.full(len(prompts), 40)
        return np.array(
            [
                max(
                    40,
                    round(
                        200
                        * math.exp(
                            verbosity
                            + self.length_spread * _normal(self.seed, key, epoch, i, "length")
                        )
                    ),
                )
                for i in range(len(prompts))
            ]
        )

    def generations(
        self, params: Mapping[str, Any], epoch: int, prompts: Sequence[Prompt], *, key: Any = 0
    ) -> list[str]:
        """Simulated responses of the checkpoint to each prompt (deterministic per ``key``)."""
        qualities = self.response_qualities(params, epoch, prompts, key=key)
        lengths = self.response_lengths(epoch, prompts, key=key, params=params)
        return [
            simulated_response(float(q), length=int(n), text=f"epoch {epoch} of {key}")
            for q, n in zip(qualities, lengths, strict=True)
        ]


LANDSCAPES = ("narrow_lr", "interacting", "dips", "plateau")

#: :meth:`SimulatedJudge.pandalm_7b`'s settings, as fitted by
#: :func:`optuna_pandalm.testing.calibration.calibrate_simulated_judge` on PandaLM's test set
#: (``tests/test_calibration.py`` refits them and compares).
PANDALM_7B: dict[str, float] = {
    "noise": 0.0,
    "relative_noise": 1.47,
    "tie_strength": 1.61,
    "position_bias": -0.11,
    "length_bias": 0.17,
}
