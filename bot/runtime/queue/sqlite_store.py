"""The durable job store in SQLite: the default :class:`~bot.runtime.queue.store.Store`.

The web handler records a delivery and enqueues its job (:meth:`SqliteStore.record_batch`)
before it answers (invariant 6); :class:`bot.runtime.queue.pool.WorkerPool` tasks claim jobs
and run them.  Everything the store knows is in one SQLite file in
``DOCGEN_DATA_DIR``, so a restart resumes where the last process stopped.

Decisions, in short:

* **Durability.**  WAL with ``synchronous=NORMAL``: a commit is in the WAL file (the OS
  page cache) before the call returns, so it survives ``kill -9`` of the process — only
  a power loss or kernel crash can lose the last few commits (never corrupt the file).
  ``FULL`` fsyncs every commit and closes that gap at the cost of a disk flush per
  webhook; pass ``synchronous="FULL"`` when the host's power is less reliable than
  GitHub's redelivery.
* **Coalescing.**  One *runnable* job per key (``owner/repo#number``).  A newer enqueue
  marks an older *queued* job ``superseded`` and inserts a fresh row: a different head
  needs its own check run, and the old row keeps its ``data`` (a check run it may have
  opened) for the record.  While a job for the key is *running*, the new one waits
  behind it and the running one sees :meth:`SqliteStore.is_superseded` turn true.
* **Leases.**  A claim records the lease's token as the worker id; ``complete`` /
  ``fail`` / ``save_data`` from a lease that lost the job (stale-heartbeat sweep)
  change nothing.
* **Crashes.**  :meth:`SqliteStore.recover` (at start-up) puts jobs left ``running`` back in
  the queue with their ``data``, so the resumed run finishes the check run it started.
  The crashed attempt stays counted; a job that keeps killing its process ends ``failed``.

https://www.sqlite.org/wal.html and https://www.sqlite.org/pragma.html#pragma_synchronous
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.docstrings import quota
from bot.runtime.queue.policy import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_ATTEMPTS,
    JobState,
    Next,
    Outcome,
    Progress,
    Rules,
    decide,
)
from bot.runtime.queue.sqlite_ledger import SqliteLedger
from bot.runtime.queue.sqlite_recovery import SqliteRecovery
from bot.runtime.queue.sqlite_schema import job_from_row, migrate
from bot.runtime.queue.store import (
    DELIVERY_RETENTION,
    JOB_RETENTION,
    BatchItem,
    Claim,
    EnqueueResult,
    Job,
    Lease,
    Recorded,
    StoreBusy,
    StoreError,
    dumps,
)

log = logging.getLogger(__name__)

JOURNAL_FILENAME = "journal.sqlite3"
BUSY_POLL = 1.0  # s before asking again for a job whose PR is busy


_CLAIMABLE = """
    SELECT id FROM jobs AS j
    WHERE state = 'queued' AND run_after <= ?
      AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.key = j.key AND r.state = 'running')
    ORDER BY id LIMIT 1
"""

_THIS_ONE = """
    SELECT id FROM jobs AS j
    WHERE state = 'queued' AND run_after <= ? AND id = ?
      AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.key = j.key AND r.state = 'running')
"""

# A running job, under its owner's token.
_OWNED = "id = ? AND state = 'running' AND worker_id = ?"


class SqliteStore(SqliteLedger, SqliteRecovery):
    """Deliveries and jobs in one SQLite file; safe from any thread (a connection each).

    Every method is synchronous and takes well under a millisecond on a local disk, so
    the web handler and the workers call it directly from the event loop.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "NORMAL",
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        busy_timeout: float = 5.0,
        autocheckpoint: bool = True,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.rules = Rules(max_attempts, backoff_base, backoff_cap)
        self.clock = clock
        self._rng = rng
        self._busy_timeout = busy_timeout
        # False: commits never checkpoint the WAL (copy it into the database and fsync,
        # tens of ms with the committing thread blocked); call checkpoint() elsewhere —
        # WorkerPool does, from a thread, every CHECKPOINT_INTERVAL.
        self.autocheckpoint = autocheckpoint
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._workers_lock: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._create_schema()
        except BaseException:  # a refused file (newer schema): no connection left open
            self.close()
            raise

    # What the runner and the web app catch from this store (a disk, a closed store).
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, StoreError)

    @property
    def max_attempts(self) -> int:
        """Attempts a job gets (a handler may say "last attempt" in what it reports)."""
        return self.rules.max_attempts

    @classmethod
    def in_dir(cls, data_dir: Path | str, **options: Any) -> SqliteStore:
        """The journal file in ``DOCGEN_DATA_DIR``."""
        return cls(Path(data_dir) / JOURNAL_FILENAME, **options)

    # ------------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # only so that close() may close it from any thread
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")  # per connection
            if not self.autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._local.conn = conn
            self._local.depth = 0
            self._local.nowait = False
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _create_schema(self) -> None:
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. a network file system
            log.warning("journal %s runs in %s mode, not WAL", self.path, mode)
        with self.atomic():
            migrate(conn, self.path)

    @contextlib.contextmanager
    def atomic(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested blocks join the outer one.

        The web handler records a delivery and enqueues its job in one commit::

            with store.atomic():
                if store.record_delivery(...):
                    store.enqueue(...)

        An exception that leaves the outermost block rolls everything back.

        ``wait=False``: raise :class:`StoreBusy` at once when another connection holds
        the write lock, instead of SQLite's busy handler sleeping (1, 2, 5, 10 ms...)
        with the caller's thread blocked — on the web process's event loop that sleep
        would hold up every request in flight; the handler awaits and retries instead.
        """
        conn = self._conn()
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield conn
            finally:
                local.depth -= 1
            return
        if local.nowait == wait:  # switch this connection's busy handling
            timeout_ms = int(self._busy_timeout * 1000) if wait else 0
            conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            local.nowait = not wait
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
        except sqlite3.OperationalError as exc:
            if wait or ("locked" not in str(exc) and "busy" not in str(exc)):
                raise
            raise StoreBusy(str(exc)) from None
        local.depth = 1
        try:
            yield conn
        except BaseException:
            local.depth = 0
            conn.execute("ROLLBACK")
            raise
        local.depth = 0
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database as far as readers allow (``PASSIVE``: never
        waits for, nor blocks, anyone); returns (WAL frames, frames checkpointed)."""
        row = self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]), int(row[2])

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self.unlock_workers()
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ deliveries

    def record_delivery(
        self, delivery_id: str, event: str, action: str | None, *, outcome: str
    ) -> bool:
        """Remember a webhook delivery; False when this delivery id was seen before."""
        with self.atomic() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?)",
                (delivery_id, event, action, outcome, self.clock()),
            )
            return cur.rowcount == 1

    def delivery_seen(self, delivery_id: str) -> bool:
        row = (
            self._conn()
            .execute("SELECT 1 FROM deliveries WHERE delivery_id = ?", (delivery_id,))
            .fetchone()
        )
        return row is not None

    def record_batch(
        self, batch: Sequence[BatchItem], *, wait: bool = True
    ) -> list[Recorded | Exception]:
        """Record deliveries and enqueue their jobs in *one* transaction (group commit).

        Each delivery has its own savepoint: one failing rolls back only itself and comes
        back as its exception.  A batch costs one write lock and one commit instead of
        one per delivery, which is what lets several web processes share the file.
        Results as :meth:`record_delivery` + :meth:`enqueue` one by one: ``(new?, job)``.

        Raises:
            StoreBusy: ``wait=False`` and another connection holds the write lock.
        """
        out: list[Recorded | Exception] = []
        with self.atomic(wait=wait) as conn:
            for item in batch:
                conn.execute("SAVEPOINT delivery")
                try:
                    out.append(self._record(item))
                except Exception as exc:  # this delivery only: a 500 for it, not the batch
                    conn.execute("ROLLBACK TO delivery")
                    out.append(exc)
                conn.execute("RELEASE delivery")
        return out

    def _record(self, item: BatchItem) -> Recorded:
        recorded = self.record_delivery(
            item.delivery_id, item.event, item.action, outcome=item.outcome
        )
        if not recorded:
            return False, None
        if item.job is None:
            return True, None
        return True, self.enqueue(*item.job, delivery_id=item.delivery_id)

    def prune(
        self,
        now: float | None = None,
        *,
        delivery_retention: float = DELIVERY_RETENTION,
        job_retention: float = JOB_RETENTION,
    ) -> tuple[int, int]:
        """Forget deliveries and finished jobs older than their retention: (deliveries, jobs)."""
        now = self.clock() if now is None else now
        with self.atomic() as conn:
            deliveries = conn.execute(
                "DELETE FROM deliveries WHERE received < ?", (now - delivery_retention,)
            ).rowcount
            jobs = conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'superseded') AND updated < ?",
                (now - job_retention,),
            ).rowcount
            conn.execute("DELETE FROM forgotten WHERE at < ?", (now - delivery_retention,))
            conn.execute("DELETE FROM cap_counters WHERE ends < ?", (now - quota.GRACE,))
        if deliveries or jobs:
            log.info("pruned %d deliveries and %d finished jobs", deliveries, jobs)
        return deliveries, jobs

    # ------------------------------------------------------------ installations

    def forget_installation(self, installation_id: int) -> None:
        """Record that an installation was deleted or suspended (its tokens are void).

        The web process that received the event writes it; the process running the
        jobs reads it with :meth:`forgotten_after` and drops its cached clients.
        """
        with self.atomic() as conn:
            conn.execute(
                "INSERT INTO forgotten (installation_id, at) VALUES (?, ?)",
                (installation_id, self.clock()),
            )

    def forgotten_after(self, cursor: str) -> tuple[list[int], str]:
        """Installations forgotten since ``cursor`` (``"0"`` at first): ``(ids, new cursor)``."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, installation_id FROM forgotten WHERE id > ? ORDER BY id",
                (int(cursor or 0),),
            )
            .fetchall()
        )
        if not rows:
            return [], cursor
        return [row["installation_id"] for row in rows], str(rows[-1]["id"])

    def last_forgotten(self) -> str:
        """The cursor to start from: what is forgotten before start-up needs no action."""
        row = self._conn().execute("SELECT MAX(id) FROM forgotten").fetchone()
        return str(row[0] or 0)

    # ------------------------------------------------------------------ jobs

    def enqueue(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
    ) -> EnqueueResult:
        """Queue a job for ``key``, superseding an older queued one for the same key.

        A job for ``key`` that is running keeps running, is told it was superseded
        (:meth:`is_superseded`), and the new one is claimable only after it ends.
        """
        now = self.clock()
        body = dumps(payload)
        with self.atomic() as conn:
            old = conn.execute(
                "UPDATE jobs SET state = 'superseded', updated = ? "
                "WHERE key = ? AND state = 'queued' RETURNING id",
                (now, key),
            ).fetchone()
            job_id = conn.execute(
                "INSERT INTO jobs (key, kind, payload, state, run_after, created, updated, "
                "delivery_id) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (key, kind, body, now, now, now, delivery_id),
            ).lastrowid
            assert job_id is not None
            running = conn.execute(
                "SELECT id FROM jobs WHERE key = ? AND state = 'running'", (key,)
            ).fetchone()
            if old is not None or running is not None:
                conn.execute(
                    "UPDATE jobs SET superseded_by = ? WHERE id IN (?, ?)",
                    (job_id, old["id"] if old else None, running["id"] if running else None),
                )
        old_id = old["id"] if old is not None else None
        result = EnqueueResult(job_id, old_id is not None, running["id"] if running else None)
        if result.coalesced or result.behind:
            # DEBUG: the web handler's one line per delivery already says it.
            log.debug(
                "job %d supersedes queued job %s and running job %s",
                job_id,
                old_id,
                result.behind,
                extra={"delivery_id": delivery_id, "job_key": key, "job_id": job_id},
            )
        return result

    def claim(self, token: str, job_id: int | None = None, *, ref: str | None = None) -> Claim:
        """Take a due queued job whose PR has no running job, under ``token``.

        ``job_id`` None: the oldest such job (the in-process workers); else that job, or
        a Claim saying why not (``retry_in``: when it may be due).  ``ref`` is kept in
        the lease (this store has no dispatcher to keep alive).
        """
        now = self.clock()
        conn = self._conn()
        query, params = (_CLAIMABLE, (now,)) if job_id is None else (_THIS_ONE, (now, job_id))
        # A read first: idle polling never takes the write lock.
        if conn.execute(query, params).fetchone() is None:
            return self._unclaimable(job_id, now)
        with self.atomic():
            row = conn.execute(query, params).fetchone()
            if row is None:  # another worker was quicker
                return self._unclaimable(job_id, now)
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker_id = ?, "
                "heartbeat = ?, updated = ? WHERE id = ?",
                (token, now, now, row["id"]),
            )
            claimed = conn.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return Claim(Lease(job_from_row(claimed), token, ref))

    def _unclaimable(self, job_id: int | None, now: float) -> Claim:
        """Why ``job_id`` cannot be claimed now (nothing to say when none was asked for)."""
        job = None if job_id is None else self.get(job_id)
        if job is None:
            return Claim(reason="no job due" if job_id is None else "no such job")
        if job.state is not JobState.QUEUED:
            return Claim(reason=f"already {job.state}")
        if job.run_after > now:
            return Claim(retry_in=job.run_after - now, reason="not due yet")
        return Claim(retry_in=BUSY_POLL, reason=f"{job.key} is busy")

    def get(self, job_id: int) -> Job | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return job_from_row(row) if row is not None else None

    def history(self, key: str) -> list[Job]:
        """Every job still in the store for ``key``, oldest first."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE key = ? ORDER BY id", (key,))
        return [job_from_row(row) for row in rows]

    def is_superseded(self, job_id: int) -> bool:
        """True once a newer job for the same key exists: results would be stale."""
        row = (
            self._conn()
            .execute("SELECT state, superseded_by FROM jobs WHERE id = ?", (job_id,))
            .fetchone()
        )
        if row is None:
            return True
        return row["state"] == JobState.SUPERSEDED or row["superseded_by"] is not None

    def superseded_data(self, job_id: int) -> list[dict[str, Any]]:
        """The ``data`` of jobs this one replaced (directly or down a chain), oldest first.

        A replaced job may have opened a check run before it was superseded (a retry,
        a crash); the job that replaced it should conclude those, not leave them
        "in progress" on the old head.
        """
        rows = self._conn().execute(
            """WITH RECURSIVE chain (id) AS (
                   SELECT id FROM jobs WHERE superseded_by = ?
                   UNION SELECT jobs.id FROM jobs JOIN chain ON jobs.superseded_by = chain.id
               )
               SELECT data FROM jobs JOIN chain USING (id)
               WHERE state = 'superseded' AND data != '{}' ORDER BY id""",
            (job_id,),
        )
        return [json.loads(row["data"]) for row in rows]

    def renew(self, lease: Lease) -> bool:
        """Mark the run alive (its heartbeat); False when ``lease`` no longer holds it."""
        now = self.clock()
        with self.atomic() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET heartbeat = ?, updated = ? WHERE {_OWNED}",
                (now, now, lease.job.id, lease.token),
            )
            return cur.rowcount == 1

    def save_data(self, lease: Lease, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge ``data`` into the running job's data (top-level keys); the merged dict.

        None when ``lease`` no longer holds the run: nothing was saved.
        """
        with self.atomic() as conn:
            row = conn.execute(
                f"SELECT data FROM jobs WHERE {_OWNED}", (lease.job.id, lease.token)
            ).fetchone()
            if row is None:
                return None
            merged = {**json.loads(row["data"]), **data}
            conn.execute(
                "UPDATE jobs SET data = ?, updated = ? WHERE id = ?",
                (dumps(merged), self.clock(), lease.job.id),
            )
        return merged

    def complete(self, lease: Lease) -> Next | None:
        """The run finished (``done``); None when ``lease`` no longer held it."""
        return self._end(lease, Outcome.done())

    def fail(self, lease: Lease, outcome: Outcome) -> Next | None:
        """The run failed: write the policy's next state (:func:`bot.runtime.queue.policy.decide`).

        None when ``lease`` no longer held the run.  ``outcome.error`` is stored cut to
        :data:`~bot.runtime.queue.policy.MAX_ERROR_CHARS`; keeping secrets out of it is the
        caller's job.
        """
        return self._end(lease, outcome)

    def release(self, lease: Lease, reason: str = "worker stopped") -> Next | None:
        """Give a running job back untouched (shutdown): queued now, attempt refunded."""
        return self._end(lease, Outcome.released(reason))

    def _end(self, lease: Lease, outcome: Outcome) -> Next | None:
        """Write the policy's next state for the run ``lease`` holds, ended by ``outcome``."""
        now = self.clock()
        with self.atomic() as conn:
            row = conn.execute(
                f"SELECT attempts, deferrals, superseded_by FROM jobs WHERE {_OWNED}",
                (lease.job.id, lease.token),
            ).fetchone()
            if row is None:
                return None
            progress = Progress(row["attempts"], row["deferrals"], row["superseded_by"] is not None)
            after = decide(outcome, progress, self.rules, self._rng)
            self._write_next(conn, lease.job.id, after, now)
        return after

    @staticmethod
    def _write_next(conn: sqlite3.Connection, job_id: int, after: Next, now: float) -> None:
        conn.execute(
            "UPDATE jobs SET state = ?, attempts = ?, deferrals = ?,"
            " last_error = COALESCE(?, last_error), run_after = ?, worker_id = NULL,"
            " heartbeat = NULL, updated = ? WHERE id = ?",
            (
                after.state.value,
                after.attempts,
                after.deferrals,
                after.error,
                now + after.wait,
                now,
                job_id,
            ),
        )

    # ------------------------------------------------------------------ health, stats

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state present (for the metrics gauge)."""
        out = {state.value: 0 for state in JobState}
        for state, n in self._conn().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def oldest_queued_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest queued job was enqueued, or None when none is queued."""
        now = self.clock() if now is None else now
        oldest = (
            self._conn().execute("SELECT MIN(created) FROM jobs WHERE state = 'queued'").fetchone()
        )[0]
        return None if oldest is None else max(0.0, now - oldest)

    def writable(self) -> bool:
        """A cheap real write, for ``/healthz``."""
        try:
            with self.atomic() as conn:
                conn.execute(
                    "INSERT INTO health (id, written) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET written = excluded.written",
                    (self.clock(),),
                )
        except (sqlite3.Error, StoreError, OSError) as exc:
            log.warning("journal not writable: %s", exc)
            return False
        return True
