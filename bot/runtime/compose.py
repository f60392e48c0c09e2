"""The composition root: :class:`~bot.config.Settings` → the parts of each docgen process.

The one place that knows there are two modes, and chooses once (:func:`mode_of`):

* no ``REDIS_URL`` — :class:`SqliteMode`: one SQLite store in ``DOCGEN_DATA_DIR``.
  ``docgen serve`` is the whole App: the web app plus in-process workers
  (:class:`~bot.runtime.queue.pool.WorkerPool`); with several web processes the workers run in
  the supervisor (:class:`SqliteJobs`).
* ``REDIS_URL`` — :class:`RedisMode`: ``docgen serve`` only verifies, records and
  enqueues; ``docgen worker`` processes run the jobs through arq with the same handler.

Everything downstream receives a :class:`~bot.runtime.queue.store.Store` and a job handler and
never asks which it has; redis and arq are imported in Redis mode only.  Everything a
process needs is built here, once, and handed down: no module-level clients.  Missing
or invalid settings stop start-up with one line naming the variable (never its value).
The processes themselves (uvicorn, the supervisor, arq's loop) are :mod:`bot.runtime.processes`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette

from bot import logs
from bot.config import Settings, StartupError
from bot.docstrings.cache import RedisCache, SqliteCache
from bot.docstrings.llm.provider import Provider
from bot.runtime.intake import BodyLimits
from bot.runtime.job_deps import JobOptions, JobSide, job_side
from bot.runtime.metrics import Metrics, MetricsServer, usage_gauges
from bot.runtime.queue.pool import JobThread, WorkerPool
from bot.runtime.queue.sqlite_store import JOURNAL_FILENAME, SqliteStore
from bot.runtime.queue.store import Store, StoreError
from bot.runtime.web import Deps, create_app

if TYPE_CHECKING:
    from arq.worker import Worker

    from bot.runtime.queue.redis_store import RedisStore

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("docgen-data")
NO_REDIS = (
    "REDIS_URL is not set (docgen worker needs the Redis queue; "
    "docgen serve runs workers in-process without it)"
)


@dataclass
class Runtime:
    """The process's parts, for ``serve`` and for end-to-end tests."""

    settings: Settings
    app: Starlette
    store: Store
    pool: WorkerPool | None  # None: web only (the jobs run elsewhere)
    metrics: Metrics
    lock: Callable[[], None] = lambda: None  # before serving: become the jobs' one runner


# ------------------------------------------------------------------ settings


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


def data_dir(settings: Settings) -> Path:
    """``DOCGEN_DATA_DIR``: the SQLite store and cache, and the metrics' files."""
    return settings.docgen_data_dir or DEFAULT_DATA_DIR


# ------------------------------------------------------------------ the web side


def job_gauges(store: Store) -> Callable[[Metrics], None]:
    """An ``on_collect`` hook: ``docgen_jobs`` from the store (arq's queue in Redis)."""

    def collect(m: Metrics) -> None:
        try:
            counts = store.counts()
        except store.errors as exc:
            log.warning("could not read the queue length: %s", exc)
            return
        for state, count in counts.items():
            m.jobs.labels(state).set(count)

    return collect


def store_metrics(store: Store) -> Metrics:
    """This process's metrics, with the gauges read from ``store`` at each scrape."""
    metrics = Metrics()
    metrics.on_collect(job_gauges(store))
    metrics.on_collect(usage_gauges(store))
    return metrics


def freeze_startup() -> None:
    """Move what start-up made out of the collector's way (shorter pauses on the ack
    path), after collecting what start-up left as garbage so that is not kept."""
    gc.collect()
    gc.freeze()


Lifespan = Callable[[], contextlib.AbstractAsyncContextManager[None]]


def web_app(
    settings: Settings,
    store: Store,
    metrics: Metrics,
    *,
    lifespan: Lifespan,
    wake: Callable[[], None] = lambda: None,
) -> Starlette:
    """The webhook app over ``store`` with the settings' secret and event options.

    An installation deleted or suspended is recorded in the store: the processes that
    run jobs read it there (:func:`bot.runtime.queue.runner.forgetting`).
    """
    secret = settings.github_webhook_secret
    assert secret is not None  # check_settings
    return create_app(
        Deps(
            webhook_secret=secret.get_secret_value(),
            store=store,
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
            forget=store.forget_installation,
            lifespan=lifespan,
        )
    )


def _web_only_lifespan(store: Store, started: str) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        freeze_startup()
        log.info(started, extra={"pid": os.getpid()})
        try:
            yield
        finally:
            store.close()
            log.info("docgen stopped")

    return lifespan


# ------------------------------------------------------------------ the two modes


class Mode(Protocol):
    """How one mode builds each process's parts (see the module docstring)."""

    def serve_runtime(self, options: JobOptions) -> Runtime: ...

    def web_runtime(self) -> Runtime: ...

    def supervisor_jobs(self) -> SupervisorJobs: ...

    def worker(self, options: JobOptions) -> Worker: ...

    def open_ledger(self) -> Store: ...


class SupervisorJobs(Protocol):
    """The jobs of ``docgen serve --web-processes N``, run by the supervising process.

    ``open`` before anything else (a refused second instance touches nothing), ``start``
    once the multiprocess metrics are set up, ``stop`` at the end.
    """

    def open(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def mode_of(settings: Settings) -> Mode:
    """The mode of valid App settings (a StartupError names the first bad one)."""
    check_settings(settings)
    return _mode(settings)


def _mode(settings: Settings) -> Mode:
    """The mode the settings ask for: the one place that looks at ``REDIS_URL``."""
    if settings.redis_url is None:
        return SqliteMode(settings)
    return RedisMode(settings)


class SqliteMode:
    """One SQLite store in ``DOCGEN_DATA_DIR``; the jobs run beside the web app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = data_dir(settings)

    def open_store(self) -> SqliteStore:
        """The store, without WAL checkpoints on commit (the pool makes them)."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return SqliteStore.in_dir(self.data_dir, autocheckpoint=False)
        except OSError as exc:
            raise StartupError(f"DOCGEN_DATA_DIR is not writable ({exc.strerror})") from None
        except StoreError as exc:
            raise StartupError(str(exc)) from None

    def pool(self, store: SqliteStore, options: JobOptions) -> tuple[WorkerPool, JobSide]:
        """The in-process workers over ``store``, and their job side."""
        metrics = store_metrics(store)
        cache = SqliteCache(self.data_dir / "cache.sqlite3")
        jobs = job_side(self.settings, store, cache, metrics, options)
        pool = WorkerPool(
            store,
            jobs.handler,
            concurrency=self.settings.docgen_workers,
            poll_interval=options.poll_interval,
            job_timeout=self.settings.docgen_job_timeout,
        )
        return pool, jobs

    def serve_runtime(self, options: JobOptions) -> Runtime:
        """``docgen serve`` in one process: the web app and the workers, one store."""
        store = self.open_store()
        pool, jobs = self.pool(store, options)
        workers, where = self.settings.docgen_workers, str(self.data_dir)

        @contextlib.asynccontextmanager
        async def lifespan() -> AsyncIterator[None]:
            await pool.start()
            freeze_startup()
            log.info("docgen started", extra={"workers": workers, "data_dir": where})
            try:
                yield
            finally:
                # SIGTERM: stop claiming, let running jobs finish (or requeue them).
                await pool.stop(timeout=25.0)
                await jobs.close()
                log.info("docgen stopped")

        metrics = jobs.deps.metrics
        app = web_app(self.settings, store, metrics, lifespan=lifespan, wake=pool.wake)
        return Runtime(self.settings, app, store, pool, metrics, lock=_locker(store))

    def web_runtime(self) -> Runtime:
        """A web process of ``serve --web-processes``: its own connection to the store."""
        store = self.open_store()
        lifespan = _web_only_lifespan(store, "docgen web process started")
        metrics = store_metrics(store)
        app = web_app(self.settings, store, metrics, lifespan=lifespan)
        return Runtime(self.settings, app, store, None, metrics)

    def supervisor_jobs(self) -> SqliteJobs:
        return SqliteJobs(self)

    def worker(self, options: JobOptions) -> Worker:
        raise StartupError(NO_REDIS)

    def open_ledger(self) -> Store:
        """The store ``docgen serve`` writes, for ``docgen usage``; never creates one."""
        path = self.data_dir / JOURNAL_FILENAME
        if not path.is_file():
            raise StartupError(
                f"no journal at {path}: set DOCGEN_DATA_DIR to where docgen serve keeps it"
            )
        try:
            return SqliteStore(path)
        except (StoreError, OSError) as exc:
            raise StartupError(f"cannot open {path}: {exc}") from None


def _locker(store: SqliteStore) -> Callable[[], None]:
    def lock() -> None:
        """Fail before serving, with a one-line reason, not inside uvicorn's lifespan."""
        try:
            store.lock_workers()
        except StoreError as exc:
            store.close()
            raise StartupError(str(exc)) from None

    return lock


class SqliteJobs:
    """The workers of ``serve --web-processes`` in a thread of the supervisor: the one
    process holding the store's workers lock, so start-up recovery stays right."""

    def __init__(self, mode: SqliteMode) -> None:
        self.mode = mode
        self.store: SqliteStore | None = None
        self.thread: JobThread | None = None

    def open(self) -> None:
        self.store = self.mode.open_store()
        _locker(self.store)()  # first: a refused second instance touches nothing

    def start(self) -> None:
        assert self.store is not None
        try:
            pool, jobs = self.mode.pool(self.store, JobOptions())
        except StartupError:
            self.store.close()
            raise
        self.thread = JobThread(pool, closing=jobs.close, nice=self.mode.settings.docgen_jobs_nice)
        try:
            self.thread.start()
        except StoreError as exc:
            self.store.close()
            raise StartupError(str(exc)) from None

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.store is not None:
            self.store.close()


class NoJobs:
    """Redis mode's supervisor runs no jobs: ``docgen worker`` processes do."""

    def open(self) -> None:
        pass

    def start(self) -> None:
        log.info("the jobs run in docgen worker processes (REDIS_URL)")

    def stop(self) -> None:
        pass


class RedisMode:
    """``REDIS_URL``: the web side records and enqueues; arq workers run the jobs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = _redis_url(settings) or ""

    def open_store(self) -> RedisStore:
        """The Redis store of ``REDIS_URL``, reachable now, or a StartupError."""
        from redis.exceptions import RedisError

        from bot.runtime.queue.redis_store import RedisStore

        settings = self.settings
        store = RedisStore.from_url(
            self.url, prefix=settings.docgen_redis_prefix, lease=settings.docgen_job_lease
        )
        try:
            store.client.ping()
        except (RedisError, OSError) as exc:
            store.close()
            reason = logs.REDACTOR(str(exc))
            raise StartupError(f"REDIS_URL: cannot reach Redis ({reason})") from None
        return store

    def serve_runtime(self, options: JobOptions) -> Runtime:
        return self.web_runtime()

    def web_runtime(self) -> Runtime:
        """The web app alone over the Redis store: verify, record, enqueue, answer."""
        store = self.open_store()
        started = "docgen started (web only: docgen worker processes run the jobs from Redis)"
        metrics = store_metrics(store)
        app = web_app(
            self.settings, store, metrics, lifespan=_web_only_lifespan(store, started)
        )
        return Runtime(self.settings, app, store, None, metrics)

    def supervisor_jobs(self) -> NoJobs:
        return NoJobs()

    def worker(self, options: JobOptions) -> Worker:
        """The arq worker of ``docgen worker``; call with its event loop set as current."""
        from bot.runtime.queue.arq_worker import make_worker

        store = self.open_store()
        metrics = store_metrics(store)
        cache = RedisCache(store.client, prefix=self.settings.docgen_redis_prefix)
        try:
            jobs = job_side(self.settings, store, cache, metrics, options)
        except StartupError:
            store.close()
            raise
        startup, shutdown = _worker_hooks(self.settings, metrics, jobs, store)
        return make_worker(
            store,
            jobs.handler,
            redis_url=self.url,
            concurrency=self.settings.docgen_workers,
            job_timeout=self.settings.docgen_job_timeout,
            on_startup=startup,
            on_shutdown=shutdown,
        )

    def open_ledger(self) -> Store:
        """The Redis store, for ``docgen usage``."""
        from redis.exceptions import RedisError

        from bot.runtime.queue.redis_store import RedisStore

        store = RedisStore.from_url(self.url, prefix=self.settings.docgen_redis_prefix)
        try:
            store.client.ping()
        except (RedisError, OSError) as exc:
            store.close()
            raise StartupError(f"REDIS_URL: cannot reach Redis ({type(exc).__name__})") from None
        return store


def _worker_hooks(
    settings: Settings, metrics: Metrics, jobs: JobSide, store: Store
) -> tuple[Callable[[], None], Callable[[], object]]:
    """``docgen worker``'s start-up (serve ``/metrics``, say so) and shutdown (close all)."""
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
        await jobs.close()
        store.close()

    return startup, shutdown


# ------------------------------------------------------------------ entry points


def build(
    settings: Settings,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    provider: Provider | None = None,
    poll_interval: float = 0.2,
    write_interval: float = 1.0,
    github_clock: Callable[[], float] | None = None,
) -> Runtime:
    """``docgen serve``'s parts in one process (the keywords: :class:`JobOptions`)."""
    options = JobOptions(github_transport, provider, poll_interval, write_interval, github_clock)
    return mode_of(settings).serve_runtime(options)


def build_web(settings: Settings) -> Runtime:
    """The web app of one of several web processes (the jobs run elsewhere)."""
    return mode_of(settings).web_runtime()


def build_worker(
    settings: Settings,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    provider: Provider | None = None,
    write_interval: float = 1.0,
    github_clock: Callable[[], float] | None = None,
) -> Worker:
    """``docgen worker``'s arq worker (Redis mode; a StartupError otherwise)."""
    options = JobOptions(github_transport, provider, write_interval=write_interval)
    return mode_of(settings).worker(replace(options, github_clock=github_clock))


def supervisor_jobs(settings: Settings) -> SupervisorJobs:
    """The jobs the supervisor of ``serve --web-processes`` runs itself (maybe none)."""
    return mode_of(settings).supervisor_jobs()


def open_ledger(settings: Settings) -> Store:
    """The store ``docgen serve`` writes, for ``docgen usage`` (no App settings needed)."""
    return _mode(settings).open_ledger()
