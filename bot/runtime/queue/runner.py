"""One run of one job, whichever store and whoever dispatched it.

A driver obtains a :class:`~bot.runtime.queue.store.Lease` — the in-process pool by polling
the SQLite store (:mod:`bot.runtime.queue.pool`), an arq worker for the job id arq handed it
(:mod:`bot.runtime.queue.arq_worker`) — and hands it to :meth:`Runner.run`: run the handler
under a deadline (renewing the lease meanwhile when asked to), turn how it ended into
an :class:`~bot.runtime.queue.policy.Outcome`, record it with the store (which applies the
retry policy) and log one line.  The driver only decides what *it* does next (arq:
``Retry(defer=…)``).

Handler outcomes: return → done; :class:`~bot.runtime.queue.store.PermanentJobError` → failed;
:class:`~bot.runtime.queue.store.RetryLater` → deferred, no attempt spent; any other exception
or the job timeout → retried with backoff up to ``max_attempts``;
:class:`~bot.runtime.queue.store.JobLost` (or a lease renewal that fails) → stop quietly, the
job is someone else's now.  Cancelled (a worker shutting down): the job is handed back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import logs
from bot.runtime.queue.policy import JobState, Kind, Next, Outcome, deferral
from bot.runtime.queue.store import (
    Job,
    JobLost,
    Lease,
    PermanentJobError,
    RetryLater,
    Store,
    describe,
)

log = logging.getLogger(__name__)


class JobContext:
    """What a handler may do with its job besides running it."""

    def __init__(self, store: Store, lease: Lease) -> None:
        self.job = lease.job
        self.lease = lease
        self.data: dict[str, Any] = dict(lease.job.data)
        self._store = store

    @property
    def worker_id(self) -> str:
        return self.lease.token

    @property
    def delivery_id(self) -> str | None:
        return self.job.delivery_id

    def log_extra(self) -> dict[str, Any]:
        """``extra=`` for a handler's own log lines (delivery id, PR key, job id)."""
        return self.job.log_extra()

    def save_data(self, data: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
        """Persist ``data`` now (e.g. ``check_run_id`` right after creating the check run)."""
        merged = self._store.save_data(self.lease, {**(data or {}), **more})
        if merged is None:
            raise JobLost(f"job {self.job.id} is no longer ours")
        self.data = merged
        return merged

    def is_superseded(self) -> bool:
        """True when a newer job for this PR exists: stop before publishing stale results."""
        return self._store.is_superseded(self.job.id)

    def superseded_data(self) -> list[dict[str, Any]]:
        """Data of the jobs this one replaced, e.g. their ``check_run_id`` to conclude."""
        return self._store.superseded_data(self.job.id)

    def heartbeat(self) -> None:
        """Renew the lease now; raises :class:`JobLost` when it was lost."""
        if not self._store.renew(self.lease):
            raise JobLost(f"job {self.job.id} is no longer ours")


Handler = Callable[[Job, JobContext], Awaitable[None]]


@dataclass(frozen=True)
class Settled:
    """How a run ended for its driver.

    ``after``: what the store recorded (None when nothing was: ``lost`` — another
    worker owns the job — or ``unrecorded`` — the store failed; the lease runs out and
    the job runs again).
    """

    after: Next | None
    lost: bool = False
    unrecorded: bool = False

    @property
    def again_in(self) -> float | None:
        """Seconds until the job runs again when it was queued again, else None."""
        if self.after is not None and self.after.state is JobState.QUEUED:
            return self.after.wait
        return None


class Runner:
    """Runs leased jobs through ``handler`` and records their outcome in ``store``.

    ``renew_every``: renew the lease that often while the handler runs and stop the
    handler when it is lost (None: the driver keeps leases alive itself).
    """

    def __init__(
        self,
        store: Store,
        handler: Handler,
        *,
        job_timeout: float | None = 900.0,
        renew_every: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.handler = handler
        self.job_timeout = job_timeout
        self.renew_every = renew_every
        self._sleep = sleep

    async def run(self, lease: Lease) -> Settled:
        """Run ``lease``'s job to an outcome and record it; re-raises cancellation."""
        job = lease.job
        extra = job.log_extra()
        deadline = asyncio.timeout(self.job_timeout)
        lost = asyncio.Event()

        async def work() -> None:
            async with deadline:
                await self.handler(job, JobContext(self.store, lease))

        with logs.bind(**extra):
            log.info("job %s started, attempt %d", job.kind, job.attempts, extra=extra)
            started = time.monotonic()
            task = asyncio.create_task(work(), name=f"docgen-job-{job.id}")
            keeper = self._keeper(lease, task, lost)
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if lost.is_set() and not (current and current.cancelling()):
                    log.warning("job lost its lease to another worker; stopped", extra=extra)
                    return Settled(None, lost=True)
                self._record(lease, "was interrupted", Outcome.released())
                raise
            except JobLost:
                log.warning("job was taken over by another worker", extra=extra)
                return Settled(None, lost=True)
            except Exception as exc:
                what, outcome = self._failure(exc, job, deadline.expired())
                return self._record(lease, what, outcome, exc_info=_unexpected(exc, deadline))
            else:
                elapsed = round(time.monotonic() - started, 3)
                return self._record(lease, f"finished in {elapsed} s", Outcome.done())
            finally:
                if keeper is not None:
                    keeper.cancel()
                if not task.done():
                    task.cancel()

    def _failure(self, exc: Exception, job: Job, expired: bool) -> tuple[str, Outcome]:
        """The log phrase and the outcome for a handler that raised ``exc``."""
        if isinstance(exc, PermanentJobError):
            error = describe(exc)
            return f"failed permanently: {error}", Outcome.permanent(error)
        if isinstance(exc, RetryLater):
            delay = deferral(exc.retry_at, self.store.clock())
            return f"deferred by {delay:.0f} s", Outcome.deferred(describe(exc), delay)
        timed_out = isinstance(exc, TimeoutError) and expired
        error = f"timed out after {self.job_timeout} s" if timed_out else describe(exc)
        return f"attempt {job.attempts} failed: {error}", Outcome.failure(error)

    def _keeper(
        self, lease: Lease, task: asyncio.Task[None], lost: asyncio.Event
    ) -> asyncio.Task[None] | None:
        if self.renew_every is None:
            return None
        return asyncio.create_task(self._keep(lease, task, lost), name="docgen-lease")

    async def _keep(self, lease: Lease, task: asyncio.Task[None], lost: asyncio.Event) -> None:
        """Renew the lease every ``renew_every`` s; stop the handler when it is lost."""
        assert self.renew_every is not None
        while not task.done():
            await self._sleep(self.renew_every)
            try:
                alive = self.store.renew(lease)
            except self.store.errors as exc:  # the lease may well outlive a blip: try again
                log.warning("could not renew the job's lease: %s", exc, extra=lease.job.log_extra())
                continue
            if not alive:
                lost.set()
                task.cancel()
                return

    def _record(
        self, lease: Lease, what: str, outcome: Outcome, *, exc_info: bool = False
    ) -> Settled:
        """Record the outcome in the store and log it; never raises a store error."""
        extra = lease.job.log_extra()
        try:
            if outcome.kind is Kind.DONE:
                after = self.store.complete(lease)
            else:
                after = self.store.fail(lease, outcome)
        except self.store.errors:
            # The run stays recorded as running; its lease runs out and it runs again.
            log.exception("job %s, but the store could not record it", what, extra=extra)
            return Settled(None, unrecorded=True)
        if after is None:  # the lease was lost: another worker owns the job
            log.warning("job %s, but another worker owns it now", what, extra=extra)
            return Settled(None, lost=True)
        quiet = after.state in (JobState.DONE, JobState.QUEUED) and not exc_info
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "job %s; now %s",
            what,
            after.state,
            exc_info=exc_info,
            extra={**extra, "state": str(after.state)},
        )
        return Settled(after)


def _unexpected(exc: Exception, deadline: asyncio.Timeout) -> bool:
    """A traceback is worth logging: not a handler's own verdict, not our timeout."""
    if isinstance(exc, PermanentJobError | RetryLater):
        return False
    return not (isinstance(exc, TimeoutError) and deadline.expired())


def forgetting(handler: Handler, store: Store, forget: Callable[[int], None]) -> Handler:
    """``handler``, after dropping the clients of installations forgotten meanwhile.

    The one way an installation is forgotten: whichever web process gets the
    ``installation`` deleted/suspend event records it in the store
    (:meth:`~bot.runtime.queue.store.Store.forget_installation`); every process that runs jobs
    reads what was recorded since it last looked, before each job, and drops the
    cached tokens (``forget``).
    """
    cursor = store.last_forgotten()
    lock = asyncio.Lock()

    async def run(job: Job, ctx: JobContext) -> None:
        nonlocal cursor
        async with lock:
            try:
                ids, cursor = store.forgotten_after(cursor)
            except store.errors as exc:  # the job itself will find out whether it is back
                log.warning("could not read the installations forgotten: %s", exc)
                ids = []
        for installation_id in ids:
            forget(installation_id)
            log.info(
                "installation %d was deleted or suspended: its token is dropped", installation_id
            )
        await handler(job, ctx)

    return run
