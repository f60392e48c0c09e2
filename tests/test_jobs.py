"""The store and the workers: dedupe, coalescing, claims, retries, crashes, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runtime.queue import pool as pool_module
from bot.runtime.queue.policy import JobState, Outcome
from bot.runtime.queue.pool import WorkerPool
from bot.runtime.queue.runner import JobContext
from bot.runtime.queue.sqlite_schema import SCHEMA_VERSION
from bot.runtime.queue.sqlite_store import JOURNAL_FILENAME, SqliteStore
from bot.runtime.queue.store import (
    Job,
    Lease,
    PermanentJobError,
    RetryLater,
    RunSpend,
    StoreBusy,
    StoreError,
)
from tests import jobs_crash_helper as crash
from tests.factories import Clock

KEY = "octo/hello#1"
DAY = 24 * 3600.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / JOURNAL_FILENAME


@pytest.fixture
def store(path: Path, clock: Clock) -> Iterator[SqliteStore]:
    # rng=1.0: the backoff is the full exponential step, so waits are exact.
    with SqliteStore(path, clock=clock, rng=lambda: 1.0) as j:
        yield j


def payload(head: str = "a", **more: Any) -> dict[str, Any]:
    return {"installation_id": 42, "head_sha": head * 40, "trigger": "synchronize", **more}


def run(coro: Awaitable[Any], timeout: float = 30.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def claim(store: SqliteStore, token: str = "w") -> Lease | None:
    """The oldest due job's lease under ``token`` (as the pool claims), or None."""
    return store.claim(token).lease


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- the file


def test_schema_is_versioned_and_the_file_is_in_wal_mode(path: Path) -> None:
    with SqliteStore(path) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with SqliteStore(path, synchronous="full") as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_journal_from_a_newer_docgen_is_refused(path: Path) -> None:
    SqliteStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version"):
        SqliteStore(path)


def test_a_version_1_journal_is_migrated_in_place(path: Path) -> None:
    SqliteStore(path).close()
    # What docgen 0.1's first store looked like.
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE forgotten")
        conn.execute("PRAGMA user_version = 1")
    with SqliteStore(path) as store:
        store.enqueue(KEY, "review", payload())
        store.forget_installation(7)
        assert store.forgotten_after("0")[0] == [7]
        assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_forgotten_installations_are_read_once_by_cursor(store: SqliteStore, clock: Clock) -> None:
    start = store.last_forgotten()
    assert store.forgotten_after(start) == ([], start)
    store.forget_installation(7)
    store.forget_installation(9)
    ids, cursor = store.forgotten_after(start)
    assert ids == [7, 9]
    assert store.forgotten_after(cursor) == ([], cursor)
    store.forget_installation(7)
    assert store.forgotten_after(cursor)[0] == [7]
    assert int(store.last_forgotten()) > int(cursor)
    clock.advance(30 * 86400)
    store.prune()
    assert store.forgotten_after("0") == ([], "0")


def test_only_one_process_runs_a_journals_jobs(path: Path) -> None:
    """Two ``docgen serve`` on one data dir: the second must not "recover" (steal) the
    first's running jobs; it refuses to start its workers instead."""

    async def handler(job: Job, ctx: JobContext) -> None:
        pass

    async def scenario() -> None:
        with SqliteStore(path) as first, SqliteStore(path) as second:
            async with WorkerPool(first, handler, poll_interval=0.01):
                with pytest.raises(StoreError, match="already runs the jobs"):
                    await WorkerPool(second, handler).start()
            # Stopped: the lock is free again, for a restart or another process.
            async with WorkerPool(second, handler, poll_interval=0.01):
                pass

    run(scenario())


def test_the_workers_lock_is_held_across_processes(path: Path) -> None:
    SqliteStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from bot.runtime.queue.sqlite_store import SqliteStore; "
            "j = SqliteStore(sys.argv[1]); j.lock_workers(); print('locked', flush=True); "
            "time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with SqliteStore(path) as store:
            with pytest.raises(StoreError):
                store.lock_workers()
            holder.kill()  # kill -9: the OS releases the lock with the process
            holder.wait(timeout=10)
            store.lock_workers()
            store.unlock_workers()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_atomic_without_waiting_says_busy_at_once_and_waits_again_after(path: Path) -> None:
    with SqliteStore(path) as holder, SqliteStore(path, busy_timeout=5.0) as other:
        with holder.atomic():
            holder.record_delivery("held", "ping", None, outcome="ignore")
            started = time.monotonic()
            with pytest.raises(StoreBusy), other.atomic(wait=False):
                pass
            assert time.monotonic() - started < 0.5  # no busy-handler sleeping
            with pytest.raises(StoreBusy), other.atomic(wait=False):
                pass
        with other.atomic(wait=False):  # free again
            assert other.record_delivery("next", "ping", None, outcome="ignore")
        # Back to waiting: SQLite's busy handler waits out a short hold.
        release = threading.Timer(0.2, holder._conn().execute, args=("COMMIT",))
        holder._conn().execute("BEGIN IMMEDIATE")
        release.start()
        try:
            with other.atomic():
                assert other.record_delivery("after", "ping", None, outcome="ignore")
        finally:
            release.join()
        assert other._conn().execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_synchronous_off_is_not_an_option(path: Path) -> None:
    with pytest.raises(ValueError, match="NORMAL or FULL"):
        SqliteStore(path, synchronous="OFF")


def test_in_dir_creates_the_data_directory(tmp_path: Path) -> None:
    with SqliteStore.in_dir(tmp_path / "data" / "docgen") as store:
        assert store.path == tmp_path / "data" / "docgen" / JOURNAL_FILENAME
        assert store.path.exists()


def test_a_closed_journal_is_not_writable(path: Path) -> None:
    store = SqliteStore(path)
    assert store.writable()
    store.close()
    assert not store.writable()
    with pytest.raises(StoreError, match="closed"):
        store.claim("w")


# --------------------------------------------------------------------------- deliveries


def test_the_same_delivery_is_recorded_once_even_across_a_reopen(path: Path) -> None:
    with SqliteStore(path) as store:
        assert store.record_delivery("d-1", "pull_request", "opened", outcome="run")
        assert not store.record_delivery("d-1", "pull_request", "opened", outcome="run")
        assert store.record_delivery("d-2", "ping", None, outcome="ignore")
    with SqliteStore(path) as store:
        assert store.delivery_seen("d-1")
        assert not store.record_delivery("d-1", "pull_request", "opened", outcome="run")
        assert not store.delivery_seen("d-3")


def test_deliveries_are_kept_for_a_week_then_pruned(store: SqliteStore, clock: Clock) -> None:
    store.record_delivery("old", "pull_request", "opened", outcome="run")
    clock.advance(6.9 * DAY)
    store.record_delivery("recent", "pull_request", "opened", outcome="run")
    assert store.prune() == (0, 0)
    assert store.delivery_seen("old")
    clock.advance(0.2 * DAY)
    assert store.prune() == (1, 0)
    assert not store.delivery_seen("old")
    assert store.delivery_seen("recent")


def test_finished_jobs_are_pruned_but_queued_ones_are_kept(store: SqliteStore, clock: Clock) -> None:
    store.enqueue("o/r#1", "review", payload())
    store.enqueue("o/r#2", "review", payload())
    done = claim(store)
    assert done is not None
    store.complete(done)
    clock.advance(15 * DAY)
    assert store.prune() == (0, 1)
    assert store.get(done.job.id) is None
    assert store.counts()["queued"] == 1


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_no_job_is_claimed_twice_by_concurrent_threads(path: Path, shared: bool) -> None:
    n_jobs, n_threads = 200, 8
    with SqliteStore(path) as store:
        ids = {store.enqueue(f"o/r#{i}", "review", payload()).job_id for i in range(n_jobs)}
        claimed: list[list[int]] = [[] for _ in range(n_threads)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(n_threads)

        def worker(n: int) -> None:
            own = store if shared else SqliteStore(path)
            try:
                barrier.wait()
                while (lease := claim(own, f"w{n}")) is not None:
                    claimed[n].append(lease.job.id)
                    assert own.complete(lease)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                if not shared:
                    own.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        everything = [job_id for part in claimed for job_id in part]
        assert len(everything) == n_jobs
        assert set(everything) == ids
        assert store.counts()["done"] == n_jobs
        assert sum(1 for part in claimed if part) > 1  # the threads really competed


def test_claim_takes_the_oldest_due_job_first(store: SqliteStore, clock: Clock) -> None:
    first = store.enqueue("o/r#1", "review", payload()).job_id
    clock.advance(1)
    second = store.enqueue("o/r#2", "review", payload()).job_id
    lease = claim(store)
    assert lease is not None and lease.job.id == first
    assert (lease.job.attempts, lease.job.worker_id, lease.job.heartbeat) == (1, "w", clock.now)
    lease = claim(store)
    assert lease is not None and lease.job.id == second


# --------------------------------------------------------------------------- retries


def test_a_failed_job_is_not_claimed_before_its_backoff_ends(
    store: SqliteStore, clock: Clock
) -> None:
    job_id = store.enqueue(KEY, "review", payload()).job_id
    for attempt, wait in [(1, 5.0), (2, 10.0), (3, 20.0)]:
        lease = claim(store)
        assert lease is not None and (lease.job.id, lease.job.attempts) == (job_id, attempt)
        after = store.fail(lease, Outcome.failure("502 Bad Gateway"))
        assert after is not None and after.state is JobState.QUEUED
        clock.advance(wait - 0.01)
        assert claim(store) is None
        not_due = store.claim("w", job_id)
        assert not_due.lease is None and not_due.retry_in == pytest.approx(0.01)
        clock.advance(0.01)


# --------------------------------------------------------------------------- data, crashes


def test_data_is_merged_and_survives_a_reopen(path: Path) -> None:
    with SqliteStore(path) as store:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        lease = claim(store)
        assert lease is not None
        assert store.save_data(lease, {"check_run_id": 123}) == {"check_run_id": 123}
        assert store.save_data(lease, {"review_id": 9}) == {
            "check_run_id": 123,
            "review_id": 9,
        }
    with SqliteStore(path) as store:
        assert store.get(job_id).data == {"check_run_id": 123, "review_id": 9}  # type: ignore[union-attr]


def test_recover_requeues_jobs_of_a_dead_process_with_their_data(path: Path, clock: Clock) -> None:
    with SqliteStore(path, clock=clock) as store:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        other = store.enqueue("octo/other#2", "review", payload()).job_id
        dead = claim(store, "dead:1")
        assert dead is not None
        store.save_data(dead, {"check_run_id": 123})
        finished = claim(store, "dead:2")
        assert finished is not None
        store.complete(finished)
    # The process "died" here: the job is still marked running in the file.
    with SqliteStore(path, clock=clock) as store:
        assert store.get(job_id).state is JobState.RUNNING  # type: ignore[union-attr]
        assert store.recover() == 1
        job = store.get(job_id)
        assert job is not None
        assert (job.state, job.attempts, job.data) == (JobState.QUEUED, 1, {"check_run_id": 123})
        assert job.last_error == "worker dead:1 lost during attempt 1"
        assert store.get(other).state is JobState.DONE  # type: ignore[union-attr]
        again = claim(store, "new:1")
        assert again is not None
        assert (again.job.id, again.job.attempts, again.job.data) == (
            job_id,
            2,
            {"check_run_id": 123},
        )


def test_a_job_that_keeps_killing_its_process_ends_failed(path: Path, clock: Clock) -> None:
    with SqliteStore(path, clock=clock, max_attempts=2) as store:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        for _ in range(2):
            assert claim(store) is not None
            store.recover()
        job = store.get(job_id)
        assert job is not None and job.state is JobState.FAILED
        assert job.last_error == "gave up after 2 attempts: worker w lost during attempt 2"


def test_a_superseded_job_lost_in_a_crash_stays_superseded(store: SqliteStore) -> None:
    first = store.enqueue(KEY, "review", payload()).job_id
    claim(store)
    newer = store.enqueue(KEY, "review", payload("b")).job_id
    assert store.recover() == 1
    assert store.get(first).state is JobState.SUPERSEDED  # type: ignore[union-attr]
    claimed = claim(store)
    assert claimed is not None and claimed.job.id == newer


def test_only_jobs_with_a_stale_heartbeat_are_requeued(store: SqliteStore, clock: Clock) -> None:
    hung = store.enqueue("o/r#1", "review", payload()).job_id
    alive = store.enqueue("o/r#2", "review", payload()).job_id
    stuck = claim(store, "w1")
    working = claim(store, "w2")
    assert stuck is not None and working is not None
    clock.advance(200)
    assert store.renew(working)
    clock.advance(150)
    assert store.requeue_stale(300) == 1
    assert store.get(hung).state is JobState.QUEUED  # type: ignore[union-attr]
    assert store.get(alive).state is JobState.RUNNING  # type: ignore[union-attr]
    # The hung worker wakes up later: its outcome is ignored, the job is not its any more.
    assert store.complete(stuck) is None


def test_counts_and_the_age_of_the_oldest_queued_job(store: SqliteStore, clock: Clock) -> None:
    assert store.counts() == dict.fromkeys(
        ("queued", "running", "done", "failed", "superseded"), 0
    )
    assert store.oldest_queued_age() is None
    store.enqueue("o/r#1", "review", payload())
    clock.advance(30)
    store.enqueue("o/r#2", "review", payload())
    store.enqueue("o/r#2", "review", payload("b"))
    clock.advance(12)
    assert store.oldest_queued_age() == 42
    assert claim(store) is not None
    assert store.oldest_queued_age() == 12
    assert store.counts() == {
        "queued": 1,
        "running": 1,
        "done": 0,
        "failed": 0,
        "superseded": 1,
    }


# --------------------------------------------------------------------------- workers


def test_the_pool_runs_every_job_with_bounded_concurrency(store: SqliteStore) -> None:
    active, peak, seen = 0, 0, []

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        seen.append(job.key)
        active -= 1

    async def scenario() -> None:
        for i in range(12):
            store.enqueue(f"o/r#{i}", "review", payload())
        pool = WorkerPool(store, handler, concurrency=3, poll_interval=0.01)
        await pool.start()
        await wait_until(lambda: store.counts()["done"] == 12)
        await pool.stop()

    run(scenario())
    assert sorted(seen) == sorted(f"o/r#{i}" for i in range(12))
    assert peak == 3


def test_jobs_for_one_pr_never_run_at_the_same_time(store: SqliteStore) -> None:
    spans: list[tuple[str, float, float]] = []
    first_started = asyncio.Event()
    superseded_seen: list[bool] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        start = time.monotonic()
        if job.payload["head_sha"].startswith("a"):
            first_started.set()
            await asyncio.sleep(0.1)
            superseded_seen.append(ctx.is_superseded())
        spans.append((job.payload["head_sha"][0], start, time.monotonic()))

    async def scenario() -> None:
        store.enqueue(KEY, "review", payload("a"))
        async with WorkerPool(store, handler, concurrency=4, poll_interval=0.01) as pool:
            await first_started.wait()
            store.enqueue(KEY, "review", payload("b"))
            pool.wake()
            await wait_until(lambda: store.counts()["done"] == 2)

    run(scenario())
    assert superseded_seen == [True]  # the first run could stop before publishing
    (a, _, a_end), (b, b_start, _) = spans
    assert (a, b) == ("a", "b")
    assert b_start >= a_end


def test_a_permanent_error_fails_the_job_without_retry(store: SqliteStore) -> None:
    calls = 0

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise PermanentJobError("pull request 1 no longer exists")

    async def scenario() -> None:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        async with WorkerPool(store, handler, poll_interval=0.01):
            await wait_until(lambda: store.counts()["failed"] == 1)
        return store.get(job_id)

    job = run(scenario())
    assert calls == 1
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert job.last_error == "PermanentJobError: pull request 1 no longer exists"


def test_retry_later_is_honoured_and_spends_no_attempt(store: SqliteStore, clock: Clock) -> None:
    calls: list[int] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        calls.append(job.attempts)
        if len(calls) == 1:
            raise RetryLater(clock() + 100, "secondary rate limit")

    async def scenario() -> None:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        async with WorkerPool(store, handler, poll_interval=0.01) as pool:
            await wait_until(lambda: len(calls) == 1 and pool.active == 0)
            job = store.get(job_id)
            assert job is not None
            assert (job.state, job.attempts, job.deferrals) == (JobState.QUEUED, 0, 1)
            assert job.run_after == clock.now + 100
            assert job.last_error == "RetryLater: secondary rate limit"
            await asyncio.sleep(0.05)
            assert len(calls) == 1  # not before retry_at
            clock.advance(100)
            pool.wake()
            await wait_until(lambda: store.counts()["done"] == 1)

    run(scenario())
    assert calls == [1, 1]


def test_other_errors_are_retried_with_backoff(store: SqliteStore, clock: Clock) -> None:
    calls = 0

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")

    async def scenario() -> Job | None:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        async with WorkerPool(store, handler, poll_interval=0.01) as pool:
            await wait_until(lambda: calls == 1 and pool.active == 0)
            job = store.get(job_id)
            assert job is not None
            assert (job.state, job.run_after) == (JobState.QUEUED, clock.now + 5)
            assert job.last_error == "ValueError: boom"
            clock.advance(5)
            await wait_until(lambda: store.counts()["done"] == 1)
        return store.get(job_id)

    job = run(scenario())
    assert job is not None and job.attempts == 2


def test_a_job_that_outlives_its_timeout_is_retried(store: SqliteStore) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        await asyncio.sleep(60)

    async def scenario() -> Job | None:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        async with WorkerPool(store, handler, poll_interval=0.01, job_timeout=0.05):
            await wait_until(lambda: store.get(job_id).last_error is not None)  # type: ignore[union-attr]
        return store.get(job_id)

    job = run(scenario())
    assert job is not None and job.state is JobState.QUEUED
    assert job.last_error == "timed out after 0.05 s"


def test_stop_lets_running_jobs_finish(store: SqliteStore) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        await asyncio.sleep(0.1)

    async def scenario() -> None:
        store.enqueue(KEY, "review", payload())
        pool = WorkerPool(store, handler, poll_interval=0.01)
        await pool.start()
        await wait_until(lambda: pool.active == 1)
        await pool.stop(timeout=5)
        assert pool.active == 0

    run(scenario())
    assert store.counts()["done"] == 1


def test_stop_hands_back_jobs_that_outlive_the_timeout(store: SqliteStore) -> None:
    claimed_after_stop = False

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal claimed_after_stop
        if job.key != KEY:
            claimed_after_stop = True
        ctx.save_data(check_run_id=7)
        await asyncio.Event().wait()

    async def scenario() -> int:
        job_id = store.enqueue(KEY, "review", payload()).job_id
        pool = WorkerPool(store, handler, poll_interval=0.01)
        await pool.start()
        await wait_until(lambda: store.get(job_id).data == {"check_run_id": 7})  # type: ignore[union-attr]
        await pool.stop(timeout=0.05)
        store.enqueue("octo/later#2", "review", payload())
        pool.wake()
        await asyncio.sleep(0.05)
        return job_id

    job_id = run(scenario())
    job = store.get(job_id)
    assert job is not None
    # Queued again, attempt refunded, check run kept for the next start.
    assert (job.state, job.attempts, job.data) == (JobState.QUEUED, 0, {"check_run_id": 7})
    assert store.counts()["running"] == 0
    assert not claimed_after_stop


def test_wake_skips_the_poll_wait(store: SqliteStore) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    async def scenario() -> float:
        async with WorkerPool(store, handler, poll_interval=60) as pool:
            await asyncio.sleep(0.05)  # both workers are idle now
            started = time.monotonic()
            store.enqueue(KEY, "review", payload())
            pool.wake()
            await wait_until(lambda: store.counts()["done"] == 1, timeout=5)
            return time.monotonic() - started

    assert run(scenario()) < 1.0


def test_the_pool_waits_with_the_injected_sleep(store: SqliteStore) -> None:
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(0.001)

    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    async def scenario() -> None:
        pool = WorkerPool(
            store, handler, poll_interval=7, heartbeat_interval=13, sleep=fake_sleep
        )
        async with pool:
            await wait_until(lambda: 7 in asked and 13 in asked)
            store.enqueue(KEY, "review", payload())  # no wake(): found by polling
            await wait_until(lambda: store.counts()["done"] == 1)

    run(scenario())
    assert set(asked) == {7, 13}


def test_the_pool_renews_heartbeats_and_sweeps_stale_jobs(store: SqliteStore, clock: Clock) -> None:
    ghost = store.enqueue("o/ghost#1", "review", payload()).job_id
    claim(store, "other-host:999:0")  # a worker elsewhere that died
    clock.advance(400)
    mine: list[int] = []
    release = asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> None:
        mine.append(job.id)
        if job.id != ghost:
            await release.wait()

    async def scenario() -> None:
        own = store.enqueue("o/mine#2", "review", payload()).job_id
        pool = WorkerPool(
            store,
            handler,
            poll_interval=0.01,
            heartbeat_interval=0.01,
            stale_after=300,
            recover_on_start=False,
        )
        async with pool:
            await wait_until(lambda: pool.active == 1)
            claimed_at = store.get(own).heartbeat  # type: ignore[union-attr]
            clock.advance(350)  # our job is older than stale_after too: it is renewed first
            await wait_until(lambda: store.counts()["done"] == 1)  # the ghost's job
            assert store.get(own).heartbeat > claimed_at  # type: ignore[union-attr, operator]
            assert store.get(own).state is JobState.RUNNING  # type: ignore[union-attr]
            release.set()
            await wait_until(lambda: store.counts()["done"] == 2)

    run(scenario())
    assert sorted(mine) == sorted(set(mine))  # each ran once
    ghost_job = store.get(ghost)
    assert ghost_job is not None and ghost_job.attempts == 2


def test_every_job_log_line_carries_the_delivery_and_the_pr(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        if job.attempts == 1:
            raise ValueError("first try fails")

    async def scenario() -> None:
        store.enqueue(KEY, "review", payload(secret="do-not-log"), delivery_id="d-77")
        store.enqueue(KEY, "review", payload("b", secret="do-not-log"), delivery_id="d-78")
        async with WorkerPool(store, handler, poll_interval=0.01, recover_on_start=False):
            await wait_until(lambda: store.history(KEY)[-1].last_error is not None)

    with caplog.at_level(logging.DEBUG, logger="bot.runtime.queue"):
        run(scenario())
    job_lines = [  # not the pool-wide lines, nor other loggers' DEBUG chatter
        r
        for r in caplog.records
        if r.name.startswith("bot.runtime.queue") and "workers" not in r.getMessage()
    ]
    assert len(job_lines) >= 3  # supersede (DEBUG: the webhook line says it), start, failure
    for record in job_lines:
        assert record.job_key == KEY  # type: ignore[attr-defined]
        assert record.delivery_id == "d-78"  # type: ignore[attr-defined]
    assert "do-not-log" not in caplog.text


# --------------------------------------------------------------------------- kill -9


HELPER = Path(__file__).with_name("jobs_crash_helper.py")


def test_a_job_killed_mid_run_resumes_with_the_check_run_it_started(path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        assert line.strip() == "blocked", child.stderr.read()
        with SqliteStore(path) as watcher:
            (job,) = watcher.history(crash.KEY)
            assert job.state is JobState.RUNNING
            assert job.data == {"check_run_id": crash.CHECK_RUN_ID}
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    seen: list[Any] = []
    opened: list[int] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        seen.append(ctx.data.get("check_run_id"))
        if "check_run_id" not in ctx.data:  # what the review handler would do
            opened.append(job.id)
            ctx.save_data(check_run_id=999)

    with SqliteStore(path) as store:
        # The acknowledged delivery survived the kill: a redelivery is recognised.
        assert not store.record_delivery(
            crash.DELIVERY_ID, "pull_request", "opened", outcome="run"
        )
        assert store.recover() == 1

        async def scenario() -> None:
            async with WorkerPool(store, handler, poll_interval=0.01):
                await wait_until(lambda: store.counts()["done"] == 1)

        run(scenario())
        (job,) = store.history(crash.KEY)
    assert seen == [crash.CHECK_RUN_ID]
    assert opened == []  # the same check run is finished, no second one
    assert (job.state, job.attempts, job.data) == (
        JobState.DONE,
        2,
        {"check_run_id": crash.CHECK_RUN_ID},
    )


# --------------------------------------------------------------------------- speed


def _p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)
    )


def test_recording_a_delivery_and_enqueueing_is_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    p99s = {}
    for synchronous in ("NORMAL", "FULL"):
        for together in (False, True):
            with SqliteStore(
                tmp_path / f"{synchronous}-{together}.sqlite3", synchronous=synchronous
            ) as store:
                timings = []
                for i in range(1000):
                    started = time.perf_counter()
                    with store.atomic() if together else contextlib.nullcontext():
                        if store.record_delivery(
                            f"d-{i}", "pull_request", "synchronize", outcome="run"
                        ):
                            store.enqueue(
                                f"o/r#{i % 100}", "review", payload(), delivery_id=f"d-{i}"
                            )
                    timings.append((time.perf_counter() - started) * 1000)
            label = f"{synchronous:6} {'one commit ' if together else 'two commits'}"
            p99s[(synchronous, together)] = _p(timings, 99)
            lines.append(
                f"{label}: p50 {_p(timings, 50):.3f} ms  p99 {_p(timings, 99):.3f} ms  "
                f"max {max(timings):.3f} ms"
            )
    with capsys.disabled():
        print("\nrecord_delivery + enqueue, 1,000 calls:\n  " + "\n  ".join(lines))
    assert p99s[("NORMAL", True)] < 50  # a sanity bound; typical is far below 1 ms


def test_ledger_per_pr_survives_reopen(tmp_path):
    path = tmp_path / "j.sqlite3"
    with SqliteStore(path) as store:
        assert store.spent("o/r#1").tokens == 0
        store.add_spend(
            "o/r#1",
            RunSpend(
                model="gpt-4o-mini",
                prompt_tokens=900,
                completion_tokens=100,
                cost_usd=0.0002,
                head_sha="a" * 40,
            ),
        )
        store.add_spend(
            "o/r#1",
            RunSpend(
                model="gpt-4o-mini", prompt_tokens=50, completion_tokens=10, cost_usd=0.00001,
            ),
        )
        store.add_spend(
            "o/r#2",
            RunSpend(
                model="gpt-4o-mini", prompt_tokens=7, completion_tokens=3, cost_usd=0.0,
            ),
        )
    with SqliteStore(path) as store:
        spent = store.spent("o/r#1")
        assert (spent.prompt_tokens, spent.completion_tokens, spent.runs) == (950, 110, 2)
        assert spent.tokens == 1060 and abs(spent.cost_usd - 0.00021) < 1e-12


def test_without_autocheckpoint_the_pool_checkpoints_from_a_thread(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits on the web's event loop never checkpoint (an fsync with the loop
    blocked); the pool does it every CHECKPOINT_INTERVAL, off the loop."""
    monkeypatch.setattr(pool_module, "CHECKPOINT_INTERVAL", 0.02)
    with SqliteStore(path, autocheckpoint=False) as store:
        assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for n in range(50):
            store.record_delivery(f"d-{n}", "ping", None, outcome="ignore")
        frames, done = store.checkpoint()
        assert frames > 0 and done == frames  # nobody reads: everything copied
        callers: list[str] = []
        real = store.checkpoint

        def spy() -> tuple[int, int]:
            callers.append(threading.current_thread().name)
            return real()

        monkeypatch.setattr(store, "checkpoint", spy)

        async def handler(job: Job, ctx: JobContext) -> None:
            pass

        async def scenario() -> None:
            async with WorkerPool(store, handler, poll_interval=0.01):
                await wait_until(lambda: len(callers) >= 2)

        run(scenario())
        assert threading.main_thread().name not in callers
    with SqliteStore(path) as default:
        assert default._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_a_version_2_journal_keeps_its_ledger_and_gains_caps(path: Path) -> None:
    from bot.docstrings.quota import Caps, Used
    from bot.runtime.queue.sqlite_schema import _SCHEMA, _SCHEMA_2
    from bot.runtime.usage import UsageRow

    conn = sqlite3.connect(path)  # the store as docgen wrote it before installations counted
    for statement in [*_SCHEMA, *_SCHEMA_2]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO ledger (key, model, prompt_tokens, completion_tokens, cost_usd, created)"
        " VALUES ('octo/old#3', 'gpt-4o-mini', 40, 2, 0.5, 1750000000)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with SqliteStore(path, clock=lambda: 1750000000.0) as store:
        assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.usage() == [UsageRow(None, "octo/old", "2025-06", 40, 2, 0.5, 1)]
        assert store.spent("octo/old#3").tokens == 42
        store.reserve_tokens(5, 10, Caps(day=100))
        assert store.cap_used(5) == Used(10, 10)
