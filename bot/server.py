"""``docgen serve``: the web app plus in-process workers on one SQLite journal.

Everything the process needs is built here, once, from :class:`~bot.config.Settings`,
and handed down: no module-level clients.  Missing or invalid settings stop start-up
with one line naming the variable (never its value).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette

from bot import logs, sentry
from bot.app import Deps, create_app
from bot.budget import TokenCounter, encoding_for_model, load_encoding
from bot.cache import SqliteCache
from bot.config import Settings
from bot.generate import ConfigError, make_provider
from bot.github import InstallationClients, make_app_github
from bot.jobs import Journal, WorkerPool
from bot.metrics import Metrics
from bot.worker import TimedProvider, WorkerDeps, make_handler

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("docgen-data")


class StartupError(Exception):
    """A setting is missing or invalid: one line, naming the variable."""


@dataclass
class Runtime:
    """The process's parts, for ``serve`` and for end-to-end tests."""

    settings: Settings
    app: Starlette
    journal: Journal
    pool: WorkerPool
    clients: InstallationClients
    metrics: Metrics


def check_settings(settings: Settings) -> None:
    """Raise :class:`StartupError` for the first missing or unusable App setting."""
    if settings.github_app_id is None:
        raise StartupError("GITHUB_APP_ID is not set")
    if settings.github_private_key is None and settings.github_private_key_path is None:
        raise StartupError("GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is not set")
    path = settings.github_private_key_path
    if settings.github_private_key is None and path is not None and not path.is_file():
        raise StartupError("GITHUB_PRIVATE_KEY_PATH does not name a readable file")
    if (
        settings.github_webhook_secret is None
        or not settings.github_webhook_secret.get_secret_value()
    ):
        raise StartupError("GITHUB_WEBHOOK_SECRET is not set")
    if not settings.github_api_url.startswith(("https://", "http://")):
        raise StartupError("GITHUB_API_URL must be an http(s) URL")


def _secrets(settings: Settings) -> list[str]:
    out = []
    for value in (
        settings.github_webhook_secret,
        settings.github_private_key,
        settings.openai_api_key,
        settings.azure_openai_api_key,
        settings.sentry_dsn,
    ):
        if value is not None:
            out.append(value.get_secret_value())
    return out


def build(
    settings: Settings,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    provider=None,
    poll_interval: float = 0.2,
    write_interval: float = 1.0,
    github_clock=None,
) -> Runtime:
    """Assemble web app, journal, workers and clients from ``settings``."""
    check_settings(settings)
    data_dir = settings.docgen_data_dir or DEFAULT_DATA_DIR
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal.in_dir(data_dir)
    except OSError as exc:
        raise StartupError(f"DOCGEN_DATA_DIR is not writable ({exc.strerror})") from None
    try:
        app_github = make_app_github(settings, async_transport=github_transport, clock=github_clock)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    try:
        provider = provider or make_provider(settings)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    # write_interval: GitHub asks for ≥ 1 s between content-creating requests.
    clients = InstallationClients(app_github, write_interval=write_interval, clock=github_clock)
    metrics = Metrics()
    counter = TokenCounter(
        load_encoding(encoding_for_model(provider.model, settings.docgen_encoding))
    )
    deps = WorkerDeps(
        settings=settings,
        clients=clients,
        provider=TimedProvider(provider, metrics),
        cache=SqliteCache(data_dir / "cache.sqlite3"),
        counter=counter,
        journal=journal,
        metrics=metrics,
    )
    pool = WorkerPool(
        journal,
        make_handler(deps),
        concurrency=settings.docgen_workers,
        poll_interval=poll_interval,
    )

    def job_gauges(m: Metrics) -> None:
        for state, count in journal.counts().items():
            m.jobs.labels(state).set(count)

    metrics.on_collect(job_gauges)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await pool.start()
        log.info(
            "docgen started", extra={"workers": settings.docgen_workers, "data_dir": str(data_dir)}
        )
        try:
            yield
        finally:
            # SIGTERM: stop claiming, let running jobs finish (or requeue them).
            await pool.stop(timeout=25.0)
            log.info("docgen stopped")

    secret = settings.github_webhook_secret
    assert secret is not None
    app = create_app(
        Deps(
            webhook_secret=secret.get_secret_value(),
            journal=journal,
            metrics=metrics,
            app_id=settings.github_app_id,
            run_drafts=settings.docgen_run_drafts,
            skip_forks=settings.docgen_skip_forks,
            reply_to_strangers=settings.docgen_reply_to_strangers,
            wake=pool.wake,
            forget=clients.forget,
            lifespan=lifespan,
        )
    )
    return Runtime(settings, app, journal, pool, clients, metrics)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the web app and workers until SIGTERM/SIGINT."""
    import uvicorn

    logs.setup(settings.log_level, secrets=_secrets(settings))
    sentry.init(settings)
    runtime = build(settings)
    uvicorn.run(
        runtime.app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging
        access_log=False,
        timeout_graceful_shutdown=30,
    )
