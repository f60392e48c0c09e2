"""The durable job journal (SQLite) and the in-process workers that drain it.

The web handler calls :meth:`Journal.record_delivery` and :meth:`Journal.enqueue` before
it answers (invariant 6); :class:`WorkerPool` tasks in the same event loop claim jobs and
run the pipeline.  Everything the journal knows is in one SQLite file in
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
  behind it and the running one sees :meth:`Journal.is_superseded` turn true.
* **Leases.**  A claim records the worker id; ``complete`` / ``fail`` / ``save_data``
  from a worker that lost the job (stale-heartbeat sweep) change nothing.
* **Crashes.**  :meth:`Journal.recover` (at start-up) puts jobs left ``running`` back in
  the queue with their ``data``, so the resumed run finishes the check run it started.
  The crashed attempt stays counted; a job that keeps killing its process ends ``failed``.
* **Stop.**  :meth:`WorkerPool.stop` stops claiming, waits for running jobs up to a
  timeout, then cancels the rest and requeues them explicitly (attempt refunded, data
  kept): the journal never shows phantom ``running`` rows after a clean shutdown.

https://www.sqlite.org/wal.html and https://www.sqlite.org/pragma.html#pragma_synchronous
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bot import logs, quota
from bot.usage import Totals, UsageRow, sort_rows

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
JOURNAL_FILENAME = "journal.sqlite3"
CHECKPOINT_INTERVAL = 1.0  # s between WAL checkpoints when commits do not make them
DELIVERY_RETENTION = 7 * 24 * 3600.0  # redeliveries are possible for a few days: keep a week
JOB_RETENTION = 14 * 24 * 3600.0  # finished jobs, for debugging
MAX_ATTEMPTS = 6
BACKOFF_BASE = 5.0
BACKOFF_CAP = 600.0
MAX_DEFERRALS = 20  # RetryLater does not spend attempts, but cannot loop for ever either
MAX_RETRY_LATER = 3600.0  # GitHub's primary rate limit resets within the hour
MAX_ERROR_CHARS = 2000


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class JournalError(Exception):
    """The journal cannot be used (closed, or written by a newer docgen)."""


class JournalBusy(JournalError):
    """``atomic(wait=False)``: another connection holds the write lock right now."""


class PermanentJobError(Exception):
    """Raised by a handler: retrying cannot help (e.g. the PR is gone). The job fails."""


class RetryLater(Exception):
    """Raised by a handler: run again at ``retry_at`` (epoch seconds), e.g. a rate limit.

    A deferral does not spend one of the job's attempts.
    """

    def __init__(self, retry_at: float, reason: str = "") -> None:
        super().__init__(reason or f"retry at {retry_at:.0f}")
        self.retry_at = retry_at
        self.reason = reason


class JobLost(Exception):
    """This worker no longer owns the job (it was requeued as stale); stop quietly."""


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    state: JobState
    attempts: int
    deferrals: int
    last_error: str | None
    run_after: float
    created: float
    updated: float
    data: dict[str, Any]
    delivery_id: str | None
    worker_id: str | None
    heartbeat: float | None
    superseded_by: int | None

    def log_extra(self) -> dict[str, Any]:
        """``extra=`` for log lines about this job: never the payload itself."""
        return {"delivery_id": self.delivery_id, "job_key": self.key, "job_id": self.id}


# A PR's running LLM total across runs: the same sums ``docgen usage`` adds up.
Spend = Totals


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    coalesced: bool  # an older queued job for the key was superseded by this one
    behind: int | None = None  # the running job for the key this one waits for


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped.

    "Equal jitter": half the step is fixed, half random, so retries of jobs that failed
    together spread out but the wait still grows (2.5–5 s, 5–10 s, … up to ``cap``).
    """
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + step / 2 * rng()


_SCHEMA = [
    """CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT,
        outcome TEXT NOT NULL,
        received REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX deliveries_received ON deliveries (received)",
    # AUTOINCREMENT: ids are never reused after pruning, so ids in old logs stay unique.
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('queued', 'running', 'done', 'failed', 'superseded')),
        attempts INTEGER NOT NULL DEFAULT 0,
        deferrals INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        run_after REAL NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        delivery_id TEXT,
        worker_id TEXT,
        heartbeat REAL,
        superseded_by INTEGER
    )""",
    "CREATE INDEX jobs_state_id ON jobs (state, id)",
    # The coalescing rules, enforced by the database itself.
    "CREATE UNIQUE INDEX jobs_one_queued_per_key ON jobs (key) WHERE state = 'queued'",
    "CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs (key) WHERE state = 'running'",
    "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), written REAL NOT NULL)",
    # The token ledger per PR: what each run spent, so the per-PR budget holds across
    # pushes (invariant 3) and the summary can show the PR's running total.
    """CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        job_id INTEGER,
        head_sha TEXT,
        model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        created REAL NOT NULL
    )""",
    "CREATE INDEX ledger_key ON ledger (key)",
]
# Version 2: installations deleted or suspended, written by whichever web process got
# the event, read by the process whose GitHub clients cache their tokens.
_SCHEMA_2 = [
    """CREATE TABLE forgotten (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        installation_id INTEGER NOT NULL,
        at REAL NOT NULL
    )""",
]

# Version 3: the ledger knows each run's installation and repository (``docgen usage``),
# and the installations' cap counters (bot.quota), one row per installation and period.
# Idempotent: a journal whose version was set back must still open.
_SCHEMA_3 = [
    """CREATE TABLE IF NOT EXISTS cap_counters (
        installation_id INTEGER NOT NULL,
        period TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        ends REAL NOT NULL,
        PRIMARY KEY (installation_id, period)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ledger_created ON ledger (created)",
]
_LEDGER_COLUMNS_3 = {"installation_id": "INTEGER", "repo": "TEXT"}

_CLAIMABLE = """
    SELECT id FROM jobs AS j
    WHERE state = 'queued' AND run_after <= ?
      AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.key = j.key AND r.state = 'running')
    ORDER BY id LIMIT 1
"""

# Matches a running job, and only under its owner when a worker id is given.
_OWNED = "id = ? AND state = 'running' AND (? IS NULL OR worker_id = ?)"


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        state=JobState(row["state"]),
        attempts=row["attempts"],
        deferrals=row["deferrals"],
        last_error=row["last_error"],
        run_after=row["run_after"],
        created=row["created"],
        updated=row["updated"],
        data=json.loads(row["data"]),
        delivery_id=row["delivery_id"],
        worker_id=row["worker_id"],
        heartbeat=row["heartbeat"],
        superseded_by=row["superseded_by"],
    )


class Journal:
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
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
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

    @classmethod
    def in_dir(cls, data_dir: Path | str, **options: Any) -> Journal:
        """The journal file in ``DOCGEN_DATA_DIR``."""
        return cls(Path(data_dir) / JOURNAL_FILENAME, **options)

    # ------------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise JournalError("the journal is closed")
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
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{self.path} has schema version {version}; this docgen knows "
                    f"{SCHEMA_VERSION} — upgrade docgen or move the file away"
                )
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
            if version < 2:
                for statement in _SCHEMA_2:
                    conn.execute(statement)
            if version < 3:
                have = {row["name"] for row in conn.execute("PRAGMA table_info(ledger)")}
                for column, kind in _LEDGER_COLUMNS_3.items():
                    if column not in have:
                        conn.execute(f"ALTER TABLE ledger ADD COLUMN {column} {kind}")
                for statement in _SCHEMA_3:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def atomic(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested blocks join the outer one.

        The web handler records a delivery and enqueues its job in one commit::

            with journal.atomic():
                if journal.record_delivery(...):
                    journal.enqueue(...)

        An exception that leaves the outermost block rolls everything back.

        ``wait=False``: raise :class:`JournalBusy` at once when another connection holds
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
            raise JournalBusy(str(exc)) from None
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

    def lock_workers(self) -> None:
        """Become the one process that runs this journal's jobs (an ``flock``).

        :meth:`recover` assumes every ``running`` job is orphaned, which is only true
        when no other live process runs jobs from the same file (two ``docgen serve``
        on one ``DOCGEN_DATA_DIR``, say).  The lock makes that so; the OS drops it when
        the process dies, however it dies.

        Raises:
            JournalError: another live process holds it.
        """
        if self._workers_lock is not None:
            return
        path = self.path.with_name(self.path.name + ".workers.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(
                f"another process already runs the jobs of {self.path} "
                "(one docgen serve per DOCGEN_DATA_DIR)"
            ) from None
        self._workers_lock = fd

    def unlock_workers(self) -> None:
        """Give up :meth:`lock_workers` (closing the file releases the lock)."""
        fd, self._workers_lock = self._workers_lock, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close every thread's connection; the journal cannot be used afterwards."""
        self.unlock_workers()
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> Journal:
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

    def forgotten_after(self, cursor: int) -> tuple[list[int], int]:
        """Installations forgotten since ``cursor`` (0 at first): ``(ids, new cursor)``."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, installation_id FROM forgotten WHERE id > ? ORDER BY id", (cursor,)
            )
            .fetchall()
        )
        if not rows:
            return [], cursor
        return [row["installation_id"] for row in rows], rows[-1]["id"]

    def last_forgotten(self) -> int:
        """The cursor to start from: what is forgotten before start-up needs no action."""
        row = self._conn().execute("SELECT MAX(id) FROM forgotten").fetchone()
        return int(row[0] or 0)

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
        body = _dumps(payload)
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

    def claim(self, worker_id: str) -> Job | None:
        """Take the oldest due queued job whose key has no running job, or None."""
        now = self.clock()
        conn = self._conn()
        # A read first: idle polling never takes the write lock.
        if conn.execute(_CLAIMABLE, (now,)).fetchone() is None:
            return None
        with self.atomic():
            row = conn.execute(_CLAIMABLE, (now,)).fetchone()
            if row is None:  # another worker was quicker
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker_id = ?, "
                "heartbeat = ?, updated = ? WHERE id = ?",
                (worker_id, now, now, row["id"]),
            )
            claimed = conn.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return _job(claimed)

    def get(self, job_id: int) -> Job | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    def history(self, key: str) -> list[Job]:
        """Every job still in the journal for ``key``, oldest first."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE key = ? ORDER BY id", (key,))
        return [_job(row) for row in rows]

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

    def heartbeat(self, job_id: int, *, worker_id: str | None = None) -> bool:
        """Mark a running job alive; False when it is not running (under ``worker_id``)."""
        now = self.clock()
        with self.atomic() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET heartbeat = ?, updated = ? WHERE {_OWNED}",
                (now, now, job_id, worker_id, worker_id),
            )
            return cur.rowcount == 1

    def save_data(
        self, job_id: int, data: Mapping[str, Any], *, worker_id: str | None = None
    ) -> dict[str, Any] | None:
        """Merge ``data`` into the running job's data (top-level keys); the merged dict.

        None when the job is not running (under ``worker_id``): nothing was saved.
        """
        with self.atomic() as conn:
            row = conn.execute(
                f"SELECT data FROM jobs WHERE {_OWNED}", (job_id, worker_id, worker_id)
            ).fetchone()
            if row is None:
                return None
            merged = {**json.loads(row["data"]), **data}
            conn.execute(
                "UPDATE jobs SET data = ?, updated = ? WHERE id = ?",
                (_dumps(merged), self.clock(), job_id),
            )
        return merged

    def complete(self, job_id: int, *, worker_id: str | None = None) -> bool:
        """A running job finished; False when it was not running (under ``worker_id``)."""
        now = self.clock()
        with self.atomic() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'done', worker_id = NULL, heartbeat = NULL, "
                f"updated = ? WHERE {_OWNED}",
                (now, job_id, worker_id, worker_id),
            )
            return cur.rowcount == 1

    def fail(
        self,
        job_id: int,
        error: str,
        *,
        retry: bool,
        delay: float | None = None,
        count_attempt: bool = True,
        worker_id: str | None = None,
    ) -> JobState | None:
        """A running job failed: queue it again after a backoff, or mark it failed.

        ``delay`` overrides the backoff (a ``Retry-After``).  ``count_attempt=False``
        refunds the attempt (a rate limit is not the job's fault), at most
        :data:`MAX_DEFERRALS` times.  A job superseded meanwhile is not retried: the
        newer job does its work.  ``error`` is stored cut to :data:`MAX_ERROR_CHARS`;
        keeping secrets out of it is the caller's job.  Returns the new state, or None
        when the job was not running (under ``worker_id``).
        """
        now = self.clock()
        error = error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"
        with self.atomic() as conn:
            row = conn.execute(
                f"SELECT attempts, deferrals, superseded_by FROM jobs WHERE {_OWNED}",
                (job_id, worker_id, worker_id),
            ).fetchone()
            if row is None:
                return None
            attempts, deferrals = row["attempts"], row["deferrals"]
            if not count_attempt:
                attempts, deferrals = attempts - 1, deferrals + 1
            run_after = now
            if row["superseded_by"] is not None:
                state = JobState.SUPERSEDED
            elif not retry:
                state = JobState.FAILED
            elif count_attempt and attempts >= self.max_attempts:
                state = JobState.FAILED
                error = f"gave up after {attempts} attempts: {error}"[:MAX_ERROR_CHARS]
            elif not count_attempt and deferrals > MAX_DEFERRALS:
                state = JobState.FAILED
                error = f"gave up after {MAX_DEFERRALS} deferrals: {error}"[:MAX_ERROR_CHARS]
            else:
                state = JobState.QUEUED
                if delay is None:
                    delay = backoff_delay(
                        attempts, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng
                    )
                run_after = now + max(0.0, delay)
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = ?, deferrals = ?, last_error = ?, "
                "run_after = ?, worker_id = NULL, heartbeat = NULL, updated = ? WHERE id = ?",
                (state.value, attempts, deferrals, error, run_after, now, job_id),
            )
        return state

    def release(
        self, job_id: int, *, worker_id: str | None = None, reason: str = "worker stopped"
    ) -> JobState | None:
        """Give a running job back untouched (shutdown): queued now, attempt refunded."""
        now = self.clock()
        with self.atomic() as conn:
            row = conn.execute(
                f"SELECT superseded_by FROM jobs WHERE {_OWNED}", (job_id, worker_id, worker_id)
            ).fetchone()
            if row is None:
                return None
            state = JobState.QUEUED if row["superseded_by"] is None else JobState.SUPERSEDED
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = attempts - 1, last_error = ?, "
                "run_after = ?, worker_id = NULL, heartbeat = NULL, updated = ? WHERE id = ?",
                (state.value, reason, now, now, job_id),
            )
        return state

    def recover(self, now: float | None = None) -> int:
        """At start-up: jobs left ``running`` by a dead process go back to the queue.

        Only for a journal used by one process at a time (``docgen serve``): every
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
                job = _job(row)
                reason = f"worker {job.worker_id} lost during attempt {job.attempts}"
                if job.superseded_by is not None:
                    state = JobState.SUPERSEDED
                elif job.attempts >= self.max_attempts:
                    state = JobState.FAILED
                    reason = f"gave up after {job.attempts} attempts: {reason}"
                else:
                    state = JobState.QUEUED
                conn.execute(
                    "UPDATE jobs SET state = ?, last_error = ?, run_after = ?, "
                    "worker_id = NULL, heartbeat = NULL, updated = ? WHERE id = ?",
                    (state.value, reason, now, now, job.id),
                )
                lost.append((job, state))
        for job, state in lost:
            log.warning(
                "job %d was interrupted (attempt %d); now %s",
                job.id,
                job.attempts,
                state,
                extra=job.log_extra(),
            )
        return len(lost)

    # ------------------------------------------------------------------ health, stats

    def add_spend(
        self,
        key: str,
        *,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        job_id: int | None = None,
        head_sha: str | None = None,
        installation_id: int | None = None,
        repo: str | None = None,
    ) -> None:
        """Record what one run of ``key`` (a PR) spent on the LLM.

        ``repo`` defaults to the ``owner/name`` part of the key.
        """
        with self.atomic() as conn:
            conn.execute(
                "INSERT INTO ledger (key, job_id, head_sha, model, prompt_tokens,"
                " completion_tokens, cost_usd, created, installation_id, repo)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    job_id,
                    head_sha,
                    model,
                    prompt_tokens,
                    completion_tokens,
                    cost_usd,
                    self.clock(),
                    installation_id,
                    repo or key.partition("#")[0],
                ),
            )

    def spent(self, key: str) -> Spend:
        """Everything runs of ``key`` (a PR) have spent so far."""
        row = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
                " COALESCE(SUM(cost_usd), 0), COUNT(*) FROM ledger WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        return Spend(int(row[0]), int(row[1]), float(row[2]), int(row[3]))

    def usage(self, month: str | None = None) -> list[UsageRow]:
        """The ledger summed per installation, repository and UTC month (or one month)."""
        where, params = "", ()
        if month is not None:
            where, params = "WHERE created >= ? AND created < ?", quota.month_bounds(month)
        rows = self._conn().execute(
            "SELECT installation_id, COALESCE(repo, substr(key, 1, instr(key || '#', '#') - 1)),"
            " strftime('%Y-%m', created, 'unixepoch'), SUM(prompt_tokens),"
            f" SUM(completion_tokens), SUM(cost_usd), COUNT(*) FROM ledger {where}"
            " GROUP BY 1, 2, 3",
            params,
        )
        return sort_rows(
            UsageRow(row[0], row[1], row[2], int(row[3]), int(row[4]), float(row[5]), int(row[6]))
            for row in rows
        )

    # ------------------------------------------------------- installation caps

    def reserve_tokens(
        self, installation_id: int, tokens: int, caps: quota.Caps
    ) -> quota.Hold | quota.CapHit:
        """Count ``tokens`` against the installation's day and month, unless over a cap.

        One write transaction: concurrent reservations (any thread or process on this
        file) are serialised by SQLite's write lock, so none can take room another took.
        """
        now = self.clock()
        periods = quota.Periods.at(now)
        with self.atomic() as conn:
            hit = quota.check(self._cap_used(conn, installation_id, periods), tokens, caps, now)
            if hit is not None:
                return hit
            for period, window in ((periods.day, "day"), (periods.month, "month")):
                conn.execute(
                    "INSERT INTO cap_counters VALUES (?, ?, ?, ?) ON CONFLICT (installation_id,"
                    " period) DO UPDATE SET tokens = tokens + excluded.tokens",
                    (installation_id, period, tokens, quota.resets_at(window, now)),
                )
        return quota.Hold(installation_id, periods, tokens)

    def settle_tokens(self, hold: quota.Hold, actual: int) -> None:
        """Replace ``hold`` by ``actual`` tokens, in the periods the hold was counted in."""
        delta = max(0, actual) - hold.tokens
        if not delta:
            return
        with self.atomic() as conn:
            conn.execute(
                "UPDATE cap_counters SET tokens = MAX(0, tokens + ?)"
                " WHERE installation_id = ? AND period IN (?, ?)",
                (delta, hold.installation_id, hold.periods.day, hold.periods.month),
            )

    def cap_used(self, installation_id: int) -> quota.Used:
        """Tokens counted against the installation's caps today and this month (UTC)."""
        return self._cap_used(self._conn(), installation_id, quota.Periods.at(self.clock()))

    @staticmethod
    def _cap_used(
        conn: sqlite3.Connection, installation_id: int, periods: quota.Periods
    ) -> quota.Used:
        rows = dict(
            conn.execute(
                "SELECT period, tokens FROM cap_counters"
                " WHERE installation_id = ? AND period IN (?, ?)",
                (installation_id, periods.day, periods.month),
            ).fetchall()
        )
        return quota.Used(int(rows.get(periods.day, 0)), int(rows.get(periods.month, 0)))

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
        except (sqlite3.Error, JournalError, OSError) as exc:
            log.warning("journal not writable: %s", exc)
            return False
        return True


# ====================================================================== workers


class JobContext:
    """What a handler may do with its job besides running it."""

    def __init__(self, journal: Journal, job: Job, worker_id: str) -> None:
        self.job = job
        self.worker_id = worker_id
        self.data: dict[str, Any] = dict(job.data)
        self._journal = journal

    @property
    def delivery_id(self) -> str | None:
        return self.job.delivery_id

    def log_extra(self) -> dict[str, Any]:
        """``extra=`` for a handler's own log lines (delivery id, PR key, job id)."""
        return self.job.log_extra()

    def save_data(self, data: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
        """Persist ``data`` now (e.g. ``check_run_id`` right after creating the check run)."""
        merged = self._journal.save_data(
            self.job.id, {**(data or {}), **more}, worker_id=self.worker_id
        )
        if merged is None:
            raise JobLost(f"job {self.job.id} is no longer ours")
        self.data = merged
        return merged

    def is_superseded(self) -> bool:
        """True when a newer job for this PR exists: stop before publishing stale results."""
        return self._journal.is_superseded(self.job.id)

    def superseded_data(self) -> list[dict[str, Any]]:
        """Data of the jobs this one replaced, e.g. their ``check_run_id`` to conclude."""
        return self._journal.superseded_data(self.job.id)

    def heartbeat(self) -> None:
        if not self._journal.heartbeat(self.job.id, worker_id=self.worker_id):
            raise JobLost(f"job {self.job.id} is no longer ours")


Handler = Callable[[Job, JobContext], Awaitable[None]]


class WorkerPool:
    """``concurrency`` asyncio tasks that claim jobs from the journal and run ``handler``.

    Handler outcomes: return → done; :class:`PermanentJobError` → failed; :class:`RetryLater`
    → queued for ``retry_at`` (no attempt spent); any other exception or ``job_timeout``
    → retried with backoff until ``max_attempts``.  While jobs run, the pool renews their
    heartbeats and requeues other workers' jobs whose heartbeat went stale.
    """

    def __init__(
        self,
        journal: Journal,
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
        self.journal = journal
        self.concurrency = concurrency
        self._handler = handler
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout
        self._heartbeat_interval = heartbeat_interval
        self._stale_after = stale_after
        self._prune_interval = prune_interval
        self._recover_on_start = recover_on_start
        self._clock = clock or journal.clock
        self._sleep = sleep
        self._name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._running: dict[int, str] = {}  # job id -> worker id

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
            self.journal.lock_workers()  # recover() is only right for the one such process
            self.journal.recover()
            self.journal.prune()
        self._workers = [
            asyncio.create_task(self._work(f"{self._name}:{i}"), name=f"docgen-worker-{i}")
            for i in range(self.concurrency)
        ]
        self._maintenance = asyncio.create_task(self._maintain(), name="docgen-jobs-maintenance")
        if not self.journal.autocheckpoint:
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
            self.journal.unlock_workers()
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
                job = self.journal.claim(worker_id)
            except (sqlite3.Error, JournalError):
                log.exception("could not claim a job")
                job = None
            if job is None:
                await self._idle()
                continue
            await self._run(job, worker_id)

    async def _run(self, job: Job, worker_id: str) -> None:
        extra = job.log_extra()
        ctx = JobContext(self.journal, job, worker_id)
        self._running[job.id] = worker_id
        started = time.monotonic()
        deadline = asyncio.timeout(self._job_timeout)
        journal, owner = self.journal, {"worker_id": worker_id}
        with logs.bind(**extra):
            log.info("job %s started, attempt %d", job.kind, job.attempts, extra=extra)
            try:
                async with deadline:
                    await self._handler(job, ctx)
            except asyncio.CancelledError:
                self._settle(job, "was interrupted", partial(journal.release, job.id, **owner))
                raise
            except JobLost:
                log.warning("job was taken over by another worker", extra=extra)
            except PermanentJobError as exc:
                error = _describe(exc)
                record = partial(journal.fail, job.id, error, retry=False, **owner)
                self._settle(job, f"failed permanently: {error}", record)
            except RetryLater as exc:
                delay = min(MAX_RETRY_LATER, max(0.0, exc.retry_at - self._clock()))
                record = partial(
                    journal.fail,
                    job.id,
                    _describe(exc),
                    retry=True,
                    delay=delay,
                    count_attempt=False,
                    **owner,
                )
                self._settle(job, f"deferred by {delay:.0f} s", record)
            except Exception as exc:
                expired = isinstance(exc, TimeoutError) and deadline.expired()
                error = f"timed out after {self._job_timeout} s" if expired else _describe(exc)
                record = partial(journal.fail, job.id, error, retry=True, **owner)
                self._settle(job, f"attempt {job.attempts} failed: {error}", record, not expired)
            else:
                elapsed = round(time.monotonic() - started, 3)
                record = partial(journal.complete, job.id, **owner)
                self._settle(job, f"finished in {elapsed} s", record)
            finally:
                self._running.pop(job.id, None)

    def _settle(
        self,
        job: Job,
        what: str,
        record: Callable[[], JobState | bool | None],
        exc_info: bool = False,
    ) -> None:
        """Record a job's outcome in the journal and log it; never raises."""
        extra = job.log_extra()
        try:
            state = record()
        except (sqlite3.Error, JournalError):
            # The row stays running; the stale-heartbeat sweep or the next start requeues it.
            log.exception("job %s, but the journal could not record it", what, extra=extra)
            return
        if state is True:
            state = JobState.DONE
        if not state:  # None / False: the lease was lost, another worker owns the job
            log.warning("job %s, but another worker owns it now", what, extra=extra)
            return
        level = logging.INFO if state in (JobState.DONE, JobState.QUEUED) else logging.WARNING
        if exc_info:
            level = logging.WARNING
        log.log(
            level,
            "job %s; now %s",
            what,
            state,
            exc_info=exc_info,
            extra={**extra, "state": str(state)},
        )

    async def _maintain(self) -> None:
        last_prune = self._clock()
        while True:
            await self._sleep(self._heartbeat_interval)
            try:
                # Our own heartbeats first, so the sweep never takes a job from this pool.
                for job_id, worker_id in list(self._running.items()):
                    self.journal.heartbeat(job_id, worker_id=worker_id)
                if self.journal.requeue_stale(self._stale_after):
                    self.wake()
                if self._clock() - last_prune >= self._prune_interval:
                    last_prune = self._clock()
                    self.journal.prune()
            except (sqlite3.Error, JournalError):
                log.exception("job maintenance failed")

    async def _checkpoint(self) -> None:
        # In a thread: the loop that answers webhooks never waits for the fsync.
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await asyncio.to_thread(self.journal.checkpoint)
            except (sqlite3.Error, JournalError):
                log.exception("journal checkpoint failed")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
