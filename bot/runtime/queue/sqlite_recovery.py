"""Crash recovery for the SQLite store: one process runs the jobs, and resumes the dead's.

A mixin of :class:`bot.runtime.queue.sqlite_store.SqliteStore`.  :meth:`recover` (at start-up)
puts jobs left ``running`` back in the queue with their ``data``, so the resumed run
finishes the check run it started (invariant 6); the crashed attempt stays counted and
a job that keeps killing its process ends ``failed`` (:func:`bot.runtime.queue.policy.decide`).
That is only right when no other live process runs jobs from the same file, which the
workers lock (:meth:`lock_workers`) makes so.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.runtime.queue.policy import JobState, Next, Outcome, Progress, Rules, decide
from bot.runtime.queue.sqlite_schema import job_from_row
from bot.runtime.queue.store import Job, StoreError

log = logging.getLogger(__name__)


class SqliteRecovery:
    """Requeue the runs of dead workers; be the one process that runs the jobs."""

    path: Path
    rules: Rules
    clock: Callable[[], float]
    _rng: Callable[[], float]
    _workers_lock: int | None

    def atomic(self, *, wait: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @staticmethod
    def _write_next(conn: sqlite3.Connection, job_id: int, after: Next, now: float) -> None:
        raise NotImplementedError

    def lock_workers(self) -> None:
        """Become the one process that runs this store's jobs (an ``flock``).

        :meth:`recover` assumes every ``running`` job is orphaned, which is only true
        when no other live process runs jobs from the same file (two ``docgen serve``
        on one ``DOCGEN_DATA_DIR``, say).  The lock makes that so; the OS drops it when
        the process dies, however it dies.

        Raises:
            StoreError: another live process holds it.
        """
        if self._workers_lock is not None:
            return
        path = self.path.with_name(self.path.name + ".workers.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"another process already runs the jobs of {self.path} "
                "(one docgen serve per DOCGEN_DATA_DIR)"
            ) from None
        self._workers_lock = fd

    def unlock_workers(self) -> None:
        """Give up :meth:`lock_workers` (closing the file releases the lock)."""
        fd, self._workers_lock = self._workers_lock, None
        if fd is not None:
            os.close(fd)

    def recover(self, now: float | None = None) -> int:
        """At start-up: jobs left ``running`` by a dead process go back to the queue.

        Only for a store used by one process at a time (``docgen serve``): every
        running job is assumed orphaned.  Returns how many jobs were requeued or failed.
        """
        now = self.clock() if now is None else now
        return self._requeue_lost("SELECT * FROM jobs WHERE state = 'running'", (), now)

    def requeue_stale(self, stale_after: float, now: float | None = None) -> int:
        """Requeue running jobs whose heartbeat is older than ``stale_after`` seconds."""
        now = self.clock() if now is None else now
        return self._requeue_lost(
            "SELECT * FROM jobs WHERE state = 'running' AND heartbeat < ?",
            (now - stale_after,),
            now,
        )

    def _requeue_lost(self, query: str, params: tuple[Any, ...], now: float) -> int:
        # The lost attempt was counted at claim time and stays counted; data is kept so
        # the next run reuses the check run it opened (invariant 6).
        lost: list[tuple[Job, JobState]] = []
        with self.atomic() as conn:
            for row in conn.execute(query, params).fetchall():
                job = job_from_row(row)
                progress = Progress(job.attempts, job.deferrals, job.superseded_by is not None)
                outcome = Outcome.lost(job.worker_id, job.attempts)
                after = decide(outcome, progress, self.rules, self._rng)
                self._write_next(conn, job.id, after, now)
                lost.append((job, after.state))
        for job, state in lost:
            log.warning(
                "job %d was interrupted (attempt %d); now %s",
                job.id,
                job.attempts,
                state,
                extra=job.log_extra(),
            )
        return len(lost)
