"""The App's metrics wrapper must not hide what the pipeline plans by.

``bot.docstrings.model_calls`` reserves budget for the provider's confirmed response mode and runs
as many calls as its adaptive limit allows; both change while a provider runs, so the
wrapper has to read them through rather than copy them once.
"""

from __future__ import annotations

from bot.runtime.metrics import Metrics
from bot.runtime.review_job import TimedProvider


class Learning:
    """A provider that, like OpenAIProvider, learns its mode and limit as it goes."""

    name, model, offline = "openai", "gpt-4o-mini", False

    def __init__(self) -> None:
        self.known_mode: str | None = None
        self.concurrency = 4

    async def generate(self, request):  # pragma: no cover - not called here
        raise AssertionError


def test_the_wrapper_reports_what_the_provider_has_learned_since_it_was_built() -> None:
    inner = Learning()
    timed = TimedProvider(inner, Metrics())
    assert timed.known_mode is None and timed.concurrency == 4
    inner.known_mode, inner.concurrency = "json_object", 2
    assert timed.known_mode == "json_object"
    assert timed.concurrency == 2


def test_a_provider_without_either_gets_the_pipelines_defaults() -> None:
    class Plain:
        name, model, offline = "offline", "offline", True

        async def generate(self, request):  # pragma: no cover
            raise AssertionError

    timed = TimedProvider(Plain(), Metrics())
    assert timed.known_mode is None and timed.concurrency == 4
