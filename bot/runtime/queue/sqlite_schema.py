"""The SQLite store's schema, its migrations from older docgen versions, and its rows.

``PRAGMA user_version`` holds the version; :func:`migrate` brings an older file up to
date inside the caller's write transaction and refuses a newer one.
https://www.sqlite.org/pragma.html#pragma_user_version
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bot.runtime.queue.policy import JobState
from bot.runtime.queue.store import Job, StoreError

SCHEMA_VERSION = 3

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
# and the installations' cap counters (bot.docstrings.quota), one row per installation and period.
# Idempotent: a store whose version was set back must still open.
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


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema (inside a write transaction); refuse a newer one."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}; this docgen knows "
            f"{SCHEMA_VERSION} — upgrade docgen or move the file away"
        )
    if version == 0:
        for statement in _SCHEMA:
            conn.execute(statement)
    if version < 2:
        for statement in _SCHEMA_2:
            conn.execute(statement)
    if version < 3:
        have = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
        for column, kind in _LEDGER_COLUMNS_3.items():
            if column not in have:
                conn.execute(f"ALTER TABLE ledger ADD COLUMN {column} {kind}")
        for statement in _SCHEMA_3:
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def job_from_row(row: sqlite3.Row) -> Job:
    """A ``jobs`` row as a :class:`~bot.runtime.queue.store.Job`."""
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
