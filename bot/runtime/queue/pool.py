"""The in-process workers (SQLite mode): asyncio tasks that claim jobs and run them.

``docgen serve`` without ``REDIS_URL`` runs :class:`WorkerPool` next to the web app
(or, with several web processes, in the supervisor): its tasks poll the
:class:`~bot.runtime.queue.sqlite_store.SqliteStore` for due jobs and hand each lease to the one
:class:`~bot.runtime.queue.runner.Runner`.  Besides, the pool keeps its runs' heartbeats fresh,
requeues other workers' runs whose heartbeat went stale, prunes old rows and
checkpoints the WAL from a thread.

**Stop.**  :meth:`WorkerPool.stop` stops claiming, waits for running jobs up to a
timeout, then cancels the rest, which the runner requeues explicitly (attempt refunded,
data kept): the store never shows phantom ``running`` rows after a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from bot.runtime.queue.runner import Handler, Runner
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.queue.store import Lease

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 1.0  # s between WAL checkpoints when commits do not make them


class WorkerPool:
    """``concurrency`` asyncio tasks that claim jobs from the store and run ``handler``.

    Each claimed job runs through :class:`~bot.runtime.queue.runner.Runner` (outcomes, retries).
    While jobs run, the pool renews their heartbeats and requeues other workers' jobs
    whose heartbeat went stale.
    """

    def __init__(
        self,
        store: SqliteStore,
        handler: Handler,
        *,
        concurrency: int = 2,
        poll_interval: float = 0.2,
        job_timeout: float | None = 900.0,
        heartbeat_interval: float = 15.0,
        stale_after: float = 300.0,
        prune_interval: float = 3600.0,
        recover_on_start: bool = True,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.concurrency = concurrency
        self._runner = Runner(store, handler, job_timeout=job_timeout, sleep=sleep)
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout
        self._heartbeat_interval = heartbeat_interval
        self._stale_after = stale_after
        self._prune_interval = prune_interval
        self._recover_on_start = recover_on_start
        self._clock = clock or store.clock
        self._sleep = sleep
        self._name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._running: dict[int, Lease] = {}  # job id -> its lease

    @property
    def active(self) -> int:
        """Jobs running in this pool now."""
        return len(self._running)

    async def start(self) -> None:
        """Recover orphaned jobs, prune old rows, then start the workers."""
        if self._workers:
            raise RuntimeError("the pool is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self._recover_on_start:
            self.store.lock_workers()  # recover() is only right for the one such process
            self.store.recover()
            self.store.prune()
        self._workers = [
            asyncio.create_task(self._work(f"{self._name}:{i}"), name=f"docgen-worker-{i}")
            for i in range(self.concurrency)
        ]
        self._maintenance = asyncio.create_task(self._maintain(), name="docgen-jobs-maintenance")
        if not self.store.autocheckpoint:
            self._checkpoints = asyncio.create_task(self._checkpoint(), name="docgen-checkpoint")
        log.info("%d job workers started", self.concurrency)

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stop claiming; let running jobs finish for ``timeout`` s, then requeue them."""
        if not self._workers:
            return
        self._stopping = True
        self._wake.set()
        _, pending = await asyncio.wait(self._workers, timeout=timeout)
        for task in pending:
            task.cancel()  # _run releases the job back to the queue
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=5.0)
            if stuck:
                log.error("%d job workers ignored cancellation", len(stuck))
        for task in (self._maintenance, self._checkpoints):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._checkpoints = None
        for task in self._workers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("job worker crashed", exc_info=task.exception())
        self._workers, self._maintenance = [], None
        if self._recover_on_start:
            self.store.unlock_workers()
        log.info("job workers stopped (%d jobs handed back)", len(pending))

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def wake(self) -> None:
        """Skip the poll wait: a job was just enqueued.  Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _idle(self) -> None:
        if not self._wake.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            sleeper = asyncio.ensure_future(self._sleep(self._poll_interval))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()
        if not self._stopping:
            self._wake.clear()  # everyone waiting was woken already

    async def _work(self, worker_id: str) -> None:
        while not self._stopping:
            try:
                lease = self.store.claim(worker_id).lease
            except self.store.errors:
                log.exception("could not claim a job")
                lease = None
            if lease is None:
                await self._idle()
                continue
            self._running[lease.job.id] = lease
            try:
                await self._runner.run(lease)  # cancelled (stop): it hands the job back
            finally:
                self._running.pop(lease.job.id, None)

    async def _maintain(self) -> None:
        last_prune = self._clock()
        while True:
            await self._sleep(self._heartbeat_interval)
            try:
                # Our own heartbeats first, so the sweep never takes a job from this pool.
                for lease in list(self._running.values()):
                    self.store.renew(lease)
                if self.store.requeue_stale(self._stale_after):
                    self.wake()
                if self._clock() - last_prune >= self._prune_interval:
                    last_prune = self._clock()
                    self.store.prune()
            except self.store.errors:
                log.exception("job maintenance failed")

    async def _checkpoint(self) -> None:
        # In a thread: the loop that answers webhooks never waits for the fsync.
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except self.store.errors:
                log.exception("journal checkpoint failed")


class JobThread:
    """The job workers on their own event loop, in a thread of the supervisor."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        closing: Callable[[], Awaitable[None]] | None = None,
        nice: int = 0,
    ) -> None:
        self.pool = pool
        self._nice = nice  # the thread's (and its helper threads') niceness
        self._closing = closing  # an async callable run after the pool stopped
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="docgen-jobs", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start the workers; raises what their start-up raised (e.g. the lock)."""
        self._thread.start()
        self._started.wait(timeout)
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let running jobs finish (``pool.stop``), close, join."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        # Reviews are background work, acknowledgements are not: on Linux a thread's
        # nice value is its own and the threads it starts (asyncio.to_thread's) inherit
        # it, so the web processes win when the cores are busy.
        if self._nice:
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.pool.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.pool.stop(timeout=25.0)
            if self._closing is not None:
                await self._closing()
