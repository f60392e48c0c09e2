"""What running jobs needs in a process, built from settings: the review job's parts.

GitHub clients (App auth, installation tokens, write pacing), the LLM provider (timed),
token counting, the docstring cache and the store, bound into the job handler that the
drivers run (:mod:`bot.runtime.queue.pool`, :mod:`bot.runtime.queue.arq_worker`).  Used by the
composition root (:mod:`bot.runtime.compose`) in both modes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bot.config import Settings, StartupError
from bot.docstrings.cache import DocstringCache
from bot.docstrings.llm.factory import make_provider
from bot.docstrings.llm.provider import ConfigError, Provider
from bot.docstrings.tokens import TokenCounter, encoding_for_model, load_encoding
from bot.runtime.github.client import InstallationClients
from bot.runtime.github.connection import make_app_github
from bot.runtime.metrics import Metrics
from bot.runtime.queue.runner import Handler, JobContext, forgetting
from bot.runtime.queue.store import Job, Store
from bot.runtime.review_job import ReviewDeps, TimedProvider, make_handler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """Seams for tests and benchmarks; the defaults are production's."""

    github_transport: httpx.AsyncBaseTransport | None = None
    provider: Provider | None = None
    poll_interval: float = 0.2
    write_interval: float = 1.0  # GitHub asks for ≥ 1 s between content-creating requests
    github_clock: Callable[[], float] | None = None


@dataclass
class JobSide:
    """What running jobs needs in a process: their deps, the handler, the provider it made."""

    deps: ReviewDeps
    handler: Handler
    made: Provider | None  # None: the caller passed one in and closes it itself

    async def close(self) -> None:
        await close_provider(self.made)


def job_side(
    settings: Settings, store: Store, cache: DocstringCache, metrics: Metrics, options: JobOptions
) -> JobSide:
    """What a job needs (GitHub clients, the model, token counting), for either mode."""
    try:
        app_github = make_app_github(
            settings, async_transport=options.github_transport, clock=options.github_clock
        )
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    provider, made = _provider(settings, options)
    clients = InstallationClients(
        app_github, write_interval=options.write_interval, clock=options.github_clock
    )
    counter = TokenCounter(
        load_encoding(encoding_for_model(provider.model, settings.docgen_encoding))
    )
    deps = ReviewDeps(
        settings=settings,
        clients=clients,
        provider=TimedProvider(provider, metrics),
        cache=cache,
        counter=counter,
        store=store,
        metrics=metrics,
    )
    # Tokens are cached where jobs run: drop those of installations forgotten meanwhile.
    return JobSide(deps, forgetting(_handler(deps), store, clients.forget), made)


def _provider(settings: Settings, options: JobOptions) -> tuple[Provider, Provider | None]:
    """The LLM provider, and the one made here from the settings (None: passed in)."""
    if options.provider is not None:
        return options.provider, None
    try:
        made = make_provider(settings)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    return made, made


def _handler(deps: ReviewDeps) -> Handler:
    """The job handler, counted in ``docgen_jobs_running`` while it runs."""
    handler = make_handler(deps)

    async def counted(job: Job, ctx: JobContext) -> None:
        with deps.metrics.jobs_running.track_inprogress():
            await handler(job, ctx)

    return counted


async def close_provider(provider: object) -> None:
    """Close the LLM provider's HTTP client (connection pool); never raises.

    :class:`~bot.docstrings.llm.openai_provider.OpenAIProvider` keeps the ``openai`` SDK client in ``client``
    (``AsyncOpenAI.close()``); a provider with an ``aclose()`` of its own is asked first.
    """
    close = getattr(provider, "aclose", None)
    if close is None:
        close = getattr(getattr(provider, "client", None), "close", None)
    if close is None:  # the offline provider holds nothing
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # shutting down: say so, carry on
        log.warning("could not close the LLM client: %s", exc)
