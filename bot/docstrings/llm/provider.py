"""What a provider is: one call's request and result, the protocol, and its errors.

A provider turns a :class:`GenerationRequest` (a batch of definitions) into
:class:`~bot.docstrings.models.DocParts` per definition: :class:`~bot.docstrings.llm.openai_provider.OpenAIProvider`
(OpenAI, Azure OpenAI or any OpenAI-compatible ``base_url``) or
:class:`~bot.docstrings.llm.offline.OfflineProvider` (no key).  :func:`bot.docstrings.llm.factory.make_provider`
picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.docstrings.models import DocParts, Style, Target, Usage
from bot.docstrings.update import Ask
from bot.docstrings.voice import IMPERATIVE

# The error of every item of an answer cut at max_tokens (finish_reason "length"): the
# pipeline retries those alone with more room.
TRUNCATED = "answer truncated (max_tokens reached)"


class ConfigError(ValueError):
    """Provider settings are incomplete; the message names the variable, never a value."""


class ProviderError(Exception):
    """A provider call failed.  ``reason`` is short, user-facing and free of secrets."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class GenerationItem:
    """One definition to document, with its trimmed context
    (:func:`bot.docstrings.llm.context.context_for`), short docstrings of its repository to match
    (``bot.docstrings.voice.examples_for``) and the mood its summary is written in
    (``bot.docstrings.voice.detect_mood``)."""

    target: Target
    context: str = ""
    examples: tuple[str, ...] = ()
    mood: str = IMPERATIVE
    # A stale docstring docgen updates in place (bot.docstrings.update): the model sees it and
    # writes only the entries it lacks; docgen splices them in.
    update: Ask | None = None


class Spend(Protocol):
    """The budget's side of one call's attempts (see ``bot.docstrings.budget.CallCharge``).

    Invariant 3: an attempt whose answer never came (timeout, dropped connection) may
    still have been processed and billed in full, so it is charged its whole
    reservation; a retry needs a fresh reservation, and none is made past the budget.
    """

    def unanswered(self) -> None:
        """The attempt got no answer: charge everything it held."""

    def again(self) -> str | None:
        """Hold the budget for one more attempt; the reason when there is no room."""


@dataclass(frozen=True)
class GenerationRequest:
    """One provider call.

    ``feedback`` maps ``target.id`` to the validation errors of a previous answer,
    for the single repair round.  ``spend``, when given, is told about every attempt
    that got no answer and asked before each retry (the pipeline always gives one).
    """

    items: tuple[GenerationItem, ...]
    style: Style
    language: str = "English"
    max_tokens: int = 0  # 0: let the provider decide
    feedback: Mapping[str, list[str]] = field(default_factory=dict)
    spend: Spend | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GenerationResult:
    """Parts per ``target.id``; ``errors`` for the ids without a usable answer.

    ``mode`` is how the answer's shape was asked for (one of :data:`~bot.docstrings.llm.schema.RESPONSE_MODES`,
    "" for the offline provider); ``seconds`` the successful attempt's time on the
    wire, without the wait for a free slot.
    """

    parts: dict[str, DocParts]
    errors: dict[str, str]
    usage: Usage
    model: str
    notes: tuple[str, ...] = ()
    mode: str = ""
    seconds: float = 0.0


@runtime_checkable
class Provider(Protocol):
    """Something that writes docstring parts for a batch of definitions."""

    name: str
    model: str
    offline: bool

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...


def item_ids(request: GenerationRequest) -> dict[str, str]:
    """Short per-request id → ``target.id`` (ids in prompts cost tokens)."""
    return {str(n): item.target.id for n, item in enumerate(request.items, 1)}
