"""The arq driver (Redis mode): ``docgen worker`` runs the jobs arq hands it.

arq only moves job ids (:mod:`bot.runtime.queue.redis_store`); for each, :class:`ArqDriver`
claims the run in the Redis store (the PR's lock, under a fresh token), hands the lease
to the one :class:`~bot.runtime.queue.runner.Runner` — which renews it every third of
``DOCGEN_JOB_LEASE`` and records the outcome through the retry policy — and tells arq
what to do next:

* queued again (a backoff, a deferral) → ``Retry(defer=the policy's wait)``;
* the PR busy with another run → ``Retry(defer=BUSY_POLL)``; no attempt spent;
* the lease lost, or Redis failing while recording → ``Retry(defer=one lease)``: the
  job stays in arq's queue and a later try finds it done (a no-op), its PR busy
  (deferred again) or its run dead (taken over with its ``data``).

arq's own ``max_tries`` is set out of the way: a PR-busy deferral is not an attempt.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Retry, Worker, func

from bot.runtime.queue.redis_intake import JOB_FUNCTION, arq_dumps, arq_loads
from bot.runtime.queue.redis_store import ARQ_MAX_TRIES, DRAIN_TIMEOUT, RedisStore
from bot.runtime.queue.runner import Handler, Runner

log = logging.getLogger(__name__)


class ArqDriver:
    """The arq job function: claim the run, run it, turn the outcome into arq's next step."""

    def __init__(
        self,
        store: RedisStore,
        handler: Handler,
        *,
        job_timeout: float | None = 900.0,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.handler = handler
        self.job_timeout = job_timeout
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    async def arq_job(self, ctx: dict[str, Any], job_id: int) -> None:
        """``docgen.job(job_id)`` as arq calls it."""
        await self.run(int(job_id), str(ctx["job_id"]))

    async def run(self, job_id: int, arq_job_id: str | None = None) -> None:
        """Run job ``job_id`` once; raises arq's ``Retry`` when it must run again."""
        token = f"{self.name}:{uuid.uuid4().hex[:12]}"
        claim = self.store.claim(token, job_id, ref=arq_job_id)
        if claim.retry_in is not None:
            raise Retry(defer=claim.retry_in)
        if claim.lease is None:
            log.info("job %d not run: %s", job_id, claim.reason, extra={"job_id": job_id})
            return
        runner = Runner(
            self.store,
            self.handler,
            job_timeout=self.job_timeout,
            renew_every=self.store.lease / 3,
        )
        settled = await runner.run(claim.lease)
        if settled.lost or settled.unrecorded:
            # Not finished: finishing would take the job out of arq's queue under the
            # run that owns it now, or lose it while Redis is down.
            raise Retry(defer=self.store.lease)
        if settled.again_in is not None:
            raise Retry(defer=settled.again_in)


def make_worker(
    store: RedisStore,
    handler: Handler,
    *,
    redis_url: str,
    concurrency: int = 2,
    job_timeout: float = 900.0,
    poll_delay: float = 0.5,
    drain_timeout: float = DRAIN_TIMEOUT,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> Worker:
    """An arq worker running ``handler`` for the jobs :meth:`RedisStore.enqueue` writes.

    SIGTERM/SIGINT: arq stops taking jobs, lets running ones finish for
    ``drain_timeout`` s, then cancels them (the runner hands them back).
    ``on_startup`` runs once arq is connected, ``on_shutdown`` after the last job
    (either may be a coroutine function).  Create the worker with the event loop it
    will run on set as the current loop.
    """
    runner = ArqDriver(store, handler, job_timeout=job_timeout)

    async def startup(ctx: dict[str, Any]) -> None:
        if on_startup is not None and inspect.isawaitable(result := on_startup()):
            await result

    async def shutdown(ctx: dict[str, Any]) -> None:
        if on_shutdown is not None and inspect.isawaitable(result := on_shutdown()):
            await result
        log.info("docgen worker stopped")

    function = func(
        runner.arq_job,
        name=JOB_FUNCTION,
        max_tries=ARQ_MAX_TRIES,
        timeout=job_timeout + 60,  # ours fires first and retries; arq's is a backstop
        keep_result=0,
    )
    worker = Worker(
        functions=[function],
        queue_name=store.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        max_jobs=concurrency,
        poll_delay=poll_delay,
        keep_result=0,
        max_tries=ARQ_MAX_TRIES,
        job_completion_wait=int(drain_timeout),
        health_check_interval=60,
        job_serializer=arq_dumps,
        job_deserializer=arq_loads,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    # arq marks a started job in progress for its timeout + 10 s; a killed worker's job
    # would wait that long.  Start with our lease instead: the runner renews it.
    worker.in_progress_timeout_s = store.lease
    return worker
