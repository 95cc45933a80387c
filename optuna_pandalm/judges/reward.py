"""A judge from a reward model: a sequence classifier scores each response on its own.

PHUDGE (seeds/003) shows small judges with a classification or regression head are faster
than generative ones and give a confidence. Two forward passes per pair (one per response,
batched), no generation.

torch is imported inside the method that scores, so this module imports without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.loading import free_accelerator_memory, load_model

__all__ = ["RewardModelJudge"]


def _alpaca(instruction: str, input: str, response: str) -> str:
    if input:
        return (
            f"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}"
        )
    return f"### Instruction:\n{instruction}\n\n### Response:\n{response}"


class RewardModelJudge(PairwiseJudge):
    """Compare two responses by a reward model's scores ``r1`` and ``r2``.

    ``P(1 beats 2) = sigmoid((r1 - r2) / temperature)``; a tie when ``|r1 - r2| <=
    tie_margin``. Verdict probabilities are ``(0, p, 1 - p)``: a reward model has no
    notion of a tie beyond the margin.

    Args:
        model: A local folder or a loaded ``AutoModelForSequenceClassification`` with one
            output (the reward) or two (the reward is ``logit[1] - logit[0]``).
        tokenizer: Its tokenizer (loaded from the folder when omitted).
        template: ``"chat"`` to use the tokenizer's chat template, ``"alpaca"`` (default) for
            the Alpaca layout, or a callable ``(instruction, input, response) -> str``.
        batch_size, dtype, device, device_map, trust_remote_code: as for
            :class:`~optuna_pandalm.judges.PandaLMJudge`.
        max_length: Inputs are truncated to this many tokens (from the response's end).
        tie_margin: Reward difference below which the verdict is a tie.
        temperature: Scale of reward differences in the probability.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        template: str | Callable[[str, str, str], str] = "alpaca",
        batch_size: int = 16,
        dtype: str | None = None,
        device: str | None = None,
        device_map: Any = None,
        trust_remote_code: bool = False,
        max_length: int = 2048,
        tie_margin: float = 0.0,
        temperature: float = 1.0,
        name: str | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.tokenizer, source = load_model(
            model,
            tokenizer,
            kind="sequence-classification",
            dtype=dtype,
            device=device,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.truncation_side = "right"
        self.template = template
        self.batch_size = batch_size
        self.max_length = max_length
        self.tie_margin = tie_margin
        self.temperature = temperature
        template_name = (
            template if isinstance(template, str) else getattr(template, "__name__", "custom")
        )
        self.name = name or (
            f"reward:{source}:template={template_name}:tie_margin={tie_margin}:"
            f"temperature={temperature}:max_length={max_length}"
        )

    def __repr__(self) -> str:
        return f"RewardModelJudge(name={self.name!r})"

    def _text(self, instruction: str, input: str, response: str) -> str:
        if callable(self.template):
            return self.template(instruction, input, response)
        if self.template == "chat":
            user = f"{instruction}\n\n{input}" if input else instruction
            text: str = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user}, {"role": "assistant", "content": response}],
                tokenize=False,
            )
            return text
        if self.template == "alpaca":
            return _alpaca(instruction, input, response)
        raise ValueError(f"template must be 'alpaca', 'chat' or a callable, got {self.template!r}")

    def rewards(self, texts: Sequence[str]) -> list[float]:
        """Reward of each text, in batches."""
        import torch

        device = next(self.model.parameters()).device
        rewards: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(device)
            with torch.inference_mode():
                logits = self.model(**encoded).logits.float()
            values = logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]
            rewards.extend(values.cpu().tolist())
            free_accelerator_memory(self.model)
        return rewards

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        texts = []
        for r in requests:
            texts.append(self._text(r.instruction, r.input, r.response_1))
            texts.append(self._text(r.instruction, r.input, r.response_2))
        rewards = self.rewards(texts)
        verdicts = []
        for k in range(len(requests)):
            one, two = rewards[2 * k], rewards[2 * k + 1]
            difference = one - two
            if not math.isfinite(difference):
                verdicts.append(Verdict(winner=None, raw=f"non-finite rewards {one} {two}"))
                continue
            p_one = 1 / (1 + math.exp(-max(min(difference / self.temperature, 700), -700)))
            winner = 0 if abs(difference) <= self.tie_margin else (1 if difference > 0 else 2)
            verdicts.append(
                Verdict(
                    winner=winner,
                    probabilities=(0.0, p_one, 1 - p_one),
                    reason=f"reward 1 {one:.4f}, reward 2 {two:.4f}",
                    raw=f"{one:.6f} {two:.6f}",
                )
            )
        return verdicts
