"""What a model's answers taught about its token counts, kept between runs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from bot.docstrings.tokens import with_margin

MAX_ANSWER_ROOM = 2000  # per item, whatever the model has shown (a length retry included)
MIN_LEARNING_ESTIMATE = 256  # smaller prompts: fixed framing differences dominate the ratio
MAX_PROMPT_RATIO = 4.0  # beyond this the answer is not a tokenizer difference; slack covers it
ANSWER_HEADROOM = 1.25  # over the largest answer seen, relative to completion_reserve


@dataclass(frozen=True)
class ModelProfile:
    """What a model's answers taught us about its token counts (issue 9, items 4 and 7).

    ``prompt_ratio`` is the largest ``usage.prompt_tokens / our estimate`` seen: a server
    with another tokenizer (SmolLM2's counts 3-8 % more than o200k) is reserved for
    with it, so that its own count stays within the budget.  ``answer_ratio`` is the
    largest ``usage.completion_tokens / completion_reserve`` seen (a truncated answer
    counts with the headroom it lacked): a verbose model gets more room to answer.
    Both only grow (the largest is the safe figure); ``calls`` is how many answers.
    """

    prompt_ratio: float = 1.0
    answer_ratio: float = 0.0
    calls: int = 0

    def observe(
        self,
        *,
        estimate: int,
        prompt_tokens: int,
        reserve: int,
        completion_tokens: int,
        truncated: bool = False,
    ) -> ModelProfile:
        """The profile after one answer: ``estimate`` is docgen's prompt count (before
        margin), ``reserve`` the answer room :func:`bot.docstrings.plan.completion_reserve` gave the
        call."""
        prompt_ratio = self.prompt_ratio
        if estimate >= MIN_LEARNING_ESTIMATE and prompt_tokens > 0:
            seen = min(MAX_PROMPT_RATIO, prompt_tokens / estimate)
            prompt_ratio = max(prompt_ratio, seen)
        answer_ratio = self.answer_ratio
        if reserve > 0 and completion_tokens > 0:
            seen = completion_tokens / reserve
            if truncated:  # it needed more than it had: at least the headroom more
                seen *= ANSWER_HEADROOM
            answer_ratio = max(answer_ratio, seen)
        return ModelProfile(round(prompt_ratio, 4), round(answer_ratio, 4), self.calls + 1)

    def merge(self, other: ModelProfile) -> ModelProfile:
        """Two profiles of one model (another worker's, the stored one): the safe side."""
        return ModelProfile(
            max(self.prompt_ratio, other.prompt_ratio),
            max(self.answer_ratio, other.answer_ratio),
            max(self.calls, other.calls),
        )

    def prompt_reserve(self, estimate: int) -> int:
        """Prompt tokens to reserve for ``estimate``: the learned ratio, then the margin."""
        return with_margin(math.ceil(estimate * max(1.0, self.prompt_ratio)))

    def answer_room(self, reserve: int) -> int:
        """``max_tokens`` share for an item whose :func:`bot.docstrings.plan.completion_reserve` is
        ``reserve``."""
        scale = max(1.0, self.answer_ratio * ANSWER_HEADROOM)
        return min(MAX_ANSWER_ROOM, math.ceil(reserve * scale))

    @property
    def corrects_prompts(self) -> bool:
        return self.prompt_ratio > 1.005

    @property
    def widens_answers(self) -> bool:
        return self.answer_ratio * ANSWER_HEADROOM > 1.005

    def notes(self, model: str) -> list[str]:
        """Lines for the report when this profile changed what a run reserved."""
        out = []
        if self.corrects_prompts:
            out.append(
                f"token estimates for {model!r} corrected by +{(self.prompt_ratio - 1) * 100:.1f} %: "
                "its server counts more prompt tokens than docgen's tiktoken estimate "
                f"(learned from {self.calls} answers); reservations include it"
            )
        if self.widens_answers:
            scale = self.answer_ratio * ANSWER_HEADROOM
            out.append(
                f"room to answer for {model!r} widened x{scale:.2f} from its observed answers"
            )
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "prompt_ratio": self.prompt_ratio,
                "answer_ratio": self.answer_ratio,
                "calls": self.calls,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelProfile:
        """Inverse of :meth:`to_json`; ``ValueError`` on anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        prompt, answer, calls = (
            data.get("prompt_ratio"),
            data.get("answer_ratio"),
            data.get("calls"),
        )
        numbers = (prompt, answer, calls)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise ValueError("not numbers")
        if not (0 < prompt <= MAX_PROMPT_RATIO and answer >= 0 and calls >= 0):
            raise ValueError("out of range")
        return cls(float(prompt), float(answer), int(calls))
