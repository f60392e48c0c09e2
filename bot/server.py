"""``docgen serve`` and ``docgen worker``: the processes, assembled from settings.

Without ``REDIS_URL``, ``docgen serve`` is the whole App: the web app plus in-process
workers on one SQLite journal.  With it, ``docgen serve`` only verifies, records and
enqueues (:class:`bot.redisq.RedisJournal`), and ``docgen worker`` processes run the
jobs through arq with the same handler (:func:`build_worker`).

Everything a process needs is built here, once, from :class:`~bot.config.Settings`,
and handed down: no module-level clients.  Missing or invalid settings stop start-up
with one line naming the variable (never its value).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from redis.exceptions import RedisError
from starlette.applications import Starlette

from bot import logs, sentry
from bot.app import Deps, create_app
from bot.cache import DocstringCache, RedisCache, SqliteCache
from bot.config import Settings
from bot.github.client import InstallationClients
from bot.github.connection import make_app_github
from bot.intake import BodyLimits
from bot.jobs import Handler, Job, JobContext, Journal, JournalError, WorkerPool
from bot.llm.factory import make_provider
from bot.llm.provider import ConfigError, Provider
from bot.metrics import Metrics, MetricsServer, usage_gauges
from bot.redisq import RedisInstallationClients, RedisJournal, make_worker
from bot.review_job import TimedProvider, WorkerDeps, make_handler
from bot.secrets import secret_values
from bot.tokens import TokenCounter, encoding_for_model, load_encoding

if TYPE_CHECKING:
    from arq.worker import Worker

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("docgen-data")
NO_REDIS = (
    "REDIS_URL is not set (docgen worker needs the Redis queue; "
    "docgen serve runs workers in-process without it)"
)


class StartupError(Exception):
    """A setting is missing or invalid: one line, naming the variable."""


@dataclass
class Runtime:
    """The process's parts, for ``serve`` and for end-to-end tests."""

    settings: Settings
    app: Starlette
    journal: Journal | RedisJournal
    pool: WorkerPool | None  # None: web only, ``docgen worker`` runs the jobs (REDIS_URL)
    clients: InstallationClients | None
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
    redis_url = _redis_url(settings)
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise StartupError("REDIS_URL must be a redis://, rediss:// or unix:// URL")


def _redis_url(settings: Settings) -> str | None:
    return None if settings.redis_url is None else settings.redis_url.get_secret_value()


def _redis_journal(settings: Settings) -> RedisJournal:
    """The Redis journal of ``REDIS_URL``, reachable now, or a StartupError."""
    url = _redis_url(settings)
    assert url is not None
    journal = RedisJournal.from_url(
        url, prefix=settings.docgen_redis_prefix, lease=settings.docgen_job_lease
    )
    try:
        journal.client.ping()
    except (RedisError, OSError) as exc:
        journal.close()
        raise StartupError(f"REDIS_URL: cannot reach Redis ({logs.REDACTOR(str(exc))})") from None
    return journal


def _worker_deps(
    settings: Settings,
    journal: Journal | RedisJournal,
    cache: DocstringCache,
    metrics: Metrics,
    *,
    github_transport: httpx.AsyncBaseTransport | None,
    provider: Provider | None,
    write_interval: float,
    github_clock,
) -> tuple[WorkerDeps, Provider | None]:
    """What a job needs (GitHub clients, the model, token counting), for either mode.

    Also the provider made here from the settings (None when the caller passed one):
    the process closes its HTTP client at shutdown (:func:`close_provider`).
    """
    try:
        app_github = make_app_github(settings, async_transport=github_transport, clock=github_clock)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    made = None
    if provider is None:
        try:
            provider = made = make_provider(settings)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
    # write_interval: GitHub asks for ≥ 1 s between content-creating requests.
    pacing = {"write_interval": write_interval, "clock": github_clock}
    clients = (
        RedisInstallationClients(app_github, journal, **pacing)
        if isinstance(journal, RedisJournal)
        else InstallationClients(app_github, **pacing)
    )
    counter = TokenCounter(
        load_encoding(encoding_for_model(provider.model, settings.docgen_encoding))
    )
    deps = WorkerDeps(
        settings=settings,
        clients=clients,
        provider=TimedProvider(provider, metrics),
        cache=cache,
        counter=counter,
        journal=journal,  # type: ignore[arg-type]  # RedisJournal has the methods used
        metrics=metrics,
    )
    return deps, made


def _handler(deps: WorkerDeps) -> Handler:
    """The job handler, counted in ``docgen_jobs_running`` while it runs."""
    handler = make_handler(deps)

    async def counted(job: Job, ctx: JobContext) -> None:
        with deps.metrics.jobs_running.track_inprogress():
            await handler(job, ctx)

    return counted


async def close_provider(provider: object) -> None:
    """Close the LLM provider's HTTP client (connection pool); never raises.

    :class:`~bot.llm.openai_provider.OpenAIProvider` keeps the ``openai`` SDK client in ``client``
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


def job_gauges(journal: Journal | RedisJournal) -> Callable[[Metrics], None]:
    """An ``on_collect`` hook: ``docgen_jobs`` from the journal (or arq's queue in Redis)."""

    def collect(m: Metrics) -> None:
        try:
            counts = journal.counts()
        except (RedisError, sqlite3.Error, JournalError) as exc:
            log.warning("could not read the queue length: %s", exc)
            return
        for state, count in counts.items():
            m.jobs.labels(state).set(count)

    return collect


def freeze_startup() -> None:
    """Move what start-up made out of the collector's way (shorter pauses on the ack
    path), after collecting what start-up left as garbage so that is not kept."""
    gc.collect()
    gc.freeze()


def web_app(
    settings: Settings,
    journal: Journal | RedisJournal,
    metrics: Metrics,
    *,
    forget: Callable[[int], None],
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]],
    wake: Callable[[], None] = lambda: None,
) -> Starlette:
    """The webhook app over ``journal`` with the settings' secret and event options."""
    secret = settings.github_webhook_secret
    assert secret is not None  # check_settings
    return create_app(
        Deps(
            webhook_secret=secret.get_secret_value(),
            journal=journal,  # type: ignore[arg-type]  # RedisJournal has the same methods
            metrics=metrics,
            app_id=settings.github_app_id,
            run_drafts=settings.docgen_run_drafts,
            skip_forks=settings.docgen_skip_forks,
            reply_to_strangers=settings.docgen_reply_to_strangers,
            body_limits=BodyLimits(
                max_bytes=settings.docgen_max_body_bytes,
                in_flight_bytes=settings.docgen_body_bytes_in_flight,
                timeout=settings.docgen_body_timeout,
            ),
            wake=wake,
            forget=forget,
            lifespan=lifespan,
        )
    )


def build(
    settings: Settings,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    provider=None,
    poll_interval: float = 0.2,
    write_interval: float = 1.0,
    github_clock=None,
) -> Runtime:
    """Assemble web app, journal, workers and clients from ``settings``.

    With ``REDIS_URL``: the web app only (:func:`build_web`); jobs go to Redis.
    """
    check_settings(settings)
    if settings.redis_url is not None:
        return build_web(settings)
    data_dir = settings.docgen_data_dir or DEFAULT_DATA_DIR
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal.in_dir(data_dir, autocheckpoint=False)  # the pool checkpoints
    except OSError as exc:
        raise StartupError(f"DOCGEN_DATA_DIR is not writable ({exc.strerror})") from None
    metrics = Metrics()
    deps, made = _worker_deps(
        settings,
        journal,
        SqliteCache(data_dir / "cache.sqlite3"),
        metrics,
        github_transport=github_transport,
        provider=provider,
        write_interval=write_interval,
        github_clock=github_clock,
    )
    clients = deps.clients
    pool = WorkerPool(
        journal,
        _handler(deps),
        concurrency=settings.docgen_workers,
        poll_interval=poll_interval,
        job_timeout=settings.docgen_job_timeout,
    )

    metrics.on_collect(job_gauges(journal))
    metrics.on_collect(usage_gauges(journal))

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await pool.start()
        freeze_startup()
        log.info(
            "docgen started", extra={"workers": settings.docgen_workers, "data_dir": str(data_dir)}
        )
        try:
            yield
        finally:
            # SIGTERM: stop claiming, let running jobs finish (or requeue them).
            await pool.stop(timeout=25.0)
            await close_provider(made)
            log.info("docgen stopped")

    app = web_app(
        settings, journal, metrics, forget=clients.forget, lifespan=lifespan, wake=pool.wake
    )
    return Runtime(settings, app, journal, pool, clients, metrics)


def build_web(settings: Settings) -> Runtime:
    """The web app alone over the Redis journal: verify, record, enqueue, answer."""
    check_settings(settings)
    journal = _redis_journal(settings)
    metrics = Metrics()
    metrics.on_collect(job_gauges(journal))
    metrics.on_collect(usage_gauges(journal))

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        freeze_startup()
        log.info("docgen started (web only: docgen worker processes run the jobs from Redis)")
        try:
            yield
        finally:
            journal.close()
            log.info("docgen stopped")

    # Installation tokens are cached in the workers: a mark in Redis tells them to
    # drop an installation's client (RedisInstallationClients).
    app = web_app(settings, journal, metrics, forget=journal.forget_installation, lifespan=lifespan)
    return Runtime(settings, app, journal, None, None, metrics)


def build_worker(
    settings: Settings,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    provider=None,
    write_interval: float = 1.0,
    github_clock=None,
) -> Worker:
    """The arq worker of ``docgen worker``; call with its event loop set as current."""
    check_settings(settings)
    url = _redis_url(settings)
    if url is None:
        raise StartupError(NO_REDIS)
    journal = _redis_journal(settings)
    metrics = Metrics()
    metrics.on_collect(job_gauges(journal))
    metrics.on_collect(usage_gauges(journal))
    try:
        deps, made = _worker_deps(
            settings,
            journal,
            RedisCache(journal.client, prefix=settings.docgen_redis_prefix),
            metrics,
            github_transport=github_transport,
            provider=provider,
            write_interval=write_interval,
            github_clock=github_clock,
        )
    except StartupError:
        journal.close()
        raise
    port = settings.docgen_metrics_port
    served: list[MetricsServer] = []

    def startup() -> None:
        if port:
            try:
                served.append(metrics.serve(port))
            except OSError as exc:  # e.g. a second worker on this machine: run without
                log.warning(
                    "DOCGEN_METRICS_PORT %d: cannot listen (%s); /metrics is not served",
                    port,
                    exc.strerror or exc,
                )
        log.info(
            "docgen worker started",
            extra={
                "workers": settings.docgen_workers,
                "lease_s": settings.docgen_job_lease,
                "metrics_port": served[0].port if served else None,
            },
        )

    async def shutdown() -> None:
        for server in served:
            server.close()
        await close_provider(made)
        journal.close()

    return make_worker(
        journal,
        _handler(deps),
        redis_url=url,
        concurrency=settings.docgen_workers,
        job_timeout=settings.docgen_job_timeout,
        on_startup=startup,
        on_shutdown=shutdown,
    )


def run_worker(settings: Settings) -> int:
    """``docgen worker``: run jobs from Redis until SIGTERM/SIGINT; the exit code."""
    if settings.redis_url is None:
        print(f"docgen: {NO_REDIS}", file=sys.stderr)
        return 2
    # JSON lines only: drop the plain handler ``docgen``'s main() set up for other commands.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logs.setup(settings.log_level, secrets=secret_values(settings))
    sentry.init(settings)
    if settings.docgen_jobs_nice:
        # Before any thread starts: on Linux niceness is per thread, and inherited.
        with contextlib.suppress(OSError):
            os.nice(settings.docgen_jobs_nice)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # arq's Worker takes the current loop
    try:
        try:
            worker = build_worker(settings)
        except StartupError as exc:
            print(f"docgen: {exc}", file=sys.stderr)
            return 2
        worker.run()  # returns after SIGTERM/SIGINT, running jobs drained or handed back
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the web app (and, without REDIS_URL, the workers) until SIGTERM/SIGINT."""
    import uvicorn

    logs.setup(settings.log_level, secrets=secret_values(settings))
    sentry.init(settings)
    if settings.docgen_web_processes > 1:
        from bot.multiproc import serve_processes

        serve_processes(settings, host, port, settings.docgen_web_processes)
        return
    runtime = build(settings)
    if isinstance(runtime.journal, Journal):
        try:  # fail here, with a one-line reason, not inside uvicorn's lifespan
            runtime.journal.lock_workers()
        except JournalError as exc:
            runtime.journal.close()
            raise StartupError(str(exc)) from None
    uvicorn.run(
        runtime.app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging
        access_log=False,
        timeout_graceful_shutdown=30,
    )
