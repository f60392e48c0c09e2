"""The store contract, once, against both stores: SQLite and Redis (skips without Redis).

Whatever ``docgen serve`` runs on, a delivery is recorded once, a PR has one runnable
job, a run is held by its lease alone, and the retry policy decides the same way.
The runner is part of the contract: the same handler outcomes end the same way on
both.  Store-specific behaviour (SQLite's crash recovery and WAL, Redis's arq
bookkeeping and lease expiry) is tested in ``test_jobs.py`` / ``test_redis_journal.py``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runtime.queue.policy import MAX_DEFERRALS, MAX_ERROR_CHARS, JobState, Outcome
from bot.runtime.queue.runner import JobContext, Runner, forgetting
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.queue.store import (
    BatchItem,
    Job,
    JobLost,
    Lease,
    PermanentJobError,
    RetryLater,
    RunSpend,
    Store,
)
from tests import redis_helpers
from tests.factories import Clock

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

KEY = "octo/hello#1"
MAX_ATTEMPTS = 3


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    # rng=1.0: the backoff is the full exponential step, so waits are exact.
    options: dict[str, Any] = {"clock": clock, "rng": lambda: 1.0, "max_attempts": MAX_ATTEMPTS}
    if request.param == "sqlite":
        made: Store = SqliteStore(tmp_path / "journal.sqlite3", **options)
    else:
        from bot.runtime.queue.redis_store import RedisStore

        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("ns")
        made = RedisStore.from_url(url, prefix=prefix, lease=30.0, **options)
    yield made
    made.close()


def payload(head: str = "a", **more: Any) -> dict[str, Any]:
    return {"installation_id": 42, "head_sha": head * 40, **more}


def enqueue(store: Store, key: str = KEY, head: str = "a", delivery_id: str = "d") -> int:
    return store.enqueue(key, "review", payload(head), delivery_id=delivery_id).job_id


def take(store: Store, job_id: int, token: str = "w") -> Lease:
    claim = store.claim(token, job_id)
    assert claim.lease is not None, claim.reason
    return claim.lease


def state(store: Store, job_id: int) -> JobState:
    job = store.get(job_id)
    assert job is not None
    return job.state


# --------------------------------------------------------------------------- deliveries


def test_a_delivery_is_recorded_once(store: Store) -> None:
    assert store.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert not store.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert store.delivery_seen("d1") and not store.delivery_seen("d2")


def test_a_delivery_and_its_job_commit_together_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError), store.atomic():
        assert store.record_delivery("d-1", "pull_request", "opened", outcome="run")
        raise RuntimeError("crash between the two writes")
    assert not store.delivery_seen("d-1")  # GitHub's redelivery will be acted on
    with store.atomic():
        assert store.record_delivery("d-1", "pull_request", "opened", outcome="run")
        job_id = store.enqueue(KEY, "review", payload(), delivery_id="d-1").job_id
    assert store.delivery_seen("d-1")
    job = store.get(job_id)
    assert job is not None and (job.delivery_id, job.state) == ("d-1", JobState.QUEUED)


def test_a_batch_has_the_results_of_one_by_one(store: Store) -> None:
    assert store.record_delivery("seen", "pull_request", "opened", outcome="run")
    batch = [
        BatchItem("n1", "pull_request", "opened", "run", (KEY, "review", payload())),
        BatchItem("seen", "pull_request", "opened", "run", (KEY, "review", payload())),
        BatchItem("n2", "ping", None, "ignore", None),
        BatchItem("n3", "pull_request", "synchronize", "run", (KEY, "review", payload("b"))),
    ]
    first, dup, ignored, newer = store.record_batch(batch)
    assert dup == (False, None) and ignored == (True, None)
    assert isinstance(first, tuple) and isinstance(newer, tuple)
    assert first[0] and first[1] is not None and not first[1].coalesced
    assert newer[0] and newer[1] is not None and newer[1].coalesced
    assert state(store, first[1].job_id) is JobState.SUPERSEDED
    assert all(store.delivery_seen(d) for d in ("n1", "n2", "n3"))


# --------------------------------------------------------------------------- coalescing


def test_enqueues_while_queued_leave_one_job_with_the_newest_payload(store: Store) -> None:
    results = [
        store.enqueue(KEY, "review", payload(head), delivery_id=f"d-{head}") for head in "abc"
    ]
    assert [r.coalesced for r in results] == [False, True, True]
    assert [r.behind for r in results] == [None, None, None]
    assert [state(store, r.job_id) for r in results] == [
        JobState.SUPERSEDED,
        JobState.SUPERSEDED,
        JobState.QUEUED,
    ]
    assert store.counts()["queued"] == 1
    assert store.claim("w", results[0].job_id).lease is None  # a superseded one never runs
    job = take(store, results[-1].job_id).job
    assert (job.payload["head_sha"], job.delivery_id, job.attempts) == ("c" * 40, "d-c", 1)


def test_a_running_job_is_told_and_the_newer_one_waits_for_it(store: Store) -> None:
    running = take(store, enqueue(store))
    assert running.job.state is JobState.RUNNING and not store.is_superseded(running.job.id)
    second = store.enqueue(KEY, "review", payload("b"))
    third = store.enqueue(KEY, "review", payload("c"))
    assert (second.coalesced, second.behind) == (False, running.job.id)
    assert (third.coalesced, third.behind) == (True, running.job.id)
    assert store.is_superseded(running.job.id)
    busy = store.claim("w2", third.job_id)
    assert busy.lease is None and busy.retry_in is not None and busy.retry_in > 0
    other = enqueue(store, key="octo/other#2")
    assert take(store, other, "w2").job.key == "octo/other#2"  # other PRs do not wait
    assert store.complete(running)
    assert state(store, running.job.id) is JobState.DONE
    assert take(store, third.job_id, "w2").job.payload["head_sha"] == "c" * 40


def test_a_superseded_running_job_is_not_retried(store: Store) -> None:
    lease = take(store, enqueue(store))
    enqueue(store, head="b")
    after = store.fail(lease, Outcome.failure("GitHub said 502"))
    assert after is not None and after.state is JobState.SUPERSEDED


def test_a_job_finds_the_check_runs_of_the_jobs_it_replaced(store: Store, clock: Clock) -> None:
    first = enqueue(store)
    lease = take(store, first)
    store.save_data(lease, {"check_run_id": 7})
    assert store.fail(lease, Outcome.failure("502", delay=0)).state is JobState.QUEUED  # type: ignore[union-attr]
    second = enqueue(store, head="b")  # replaces it while queued, its check run open
    third = enqueue(store, head="c")
    assert store.superseded_data(third) == [{"check_run_id": 7}]
    assert store.superseded_data(second) == [{"check_run_id": 7}]
    assert store.superseded_data(first) == []
    store.complete(take(store, third))
    fourth = enqueue(store, head="d")
    assert store.superseded_data(fourth) == []  # the done one concluded its own


# --------------------------------------------------------------------------- leases


def test_only_the_lease_holder_can_touch_the_run(store: Store) -> None:
    lease = take(store, enqueue(store), "w1")
    thief = Lease(lease.job, "w2")
    assert store.save_data(thief, {"x": 1}) is None
    assert not store.renew(thief)
    assert store.complete(thief) is None
    assert store.fail(thief, Outcome.failure("boom")) is None
    assert store.release(thief) is None
    assert store.renew(lease)
    assert store.save_data(lease, {"x": 1}) == {"x": 1}
    assert store.save_data(lease, {"y": 2}) == {"x": 1, "y": 2}
    assert store.complete(lease)
    assert store.complete(lease) is None  # not running any more
    job = store.get(lease.job.id)
    assert job is not None and job.data == {"x": 1, "y": 2}


def test_release_hands_the_job_back_with_the_attempt_refunded(store: Store) -> None:
    lease = take(store, enqueue(store))
    store.save_data(lease, {"check_run_id": 3})
    after = store.release(lease)
    assert after is not None and after.state is JobState.QUEUED
    again = take(store, lease.job.id, "w2")
    assert (again.job.attempts, again.job.data) == (1, {"check_run_id": 3})
    assert store.fail(lease, Outcome.permanent("x")) is None  # released: not ours any more


# --------------------------------------------------------------------------- retries


def test_failures_back_off_then_give_up(store: Store, clock: Clock) -> None:
    job_id = enqueue(store)
    for attempt, wait in [(1, 5.0), (2, 10.0)]:
        lease = take(store, job_id)
        assert lease.job.attempts == attempt
        after = store.fail(lease, Outcome.failure("502 Bad Gateway"))
        assert after is not None and (after.state, after.wait) == (JobState.QUEUED, wait)
        job = store.get(job_id)
        assert job is not None and (job.run_after, job.last_error) == (
            clock.now + wait,
            "502 Bad Gateway",
        )
        clock.advance(wait)
    after = store.fail(take(store, job_id), Outcome.failure("timeout 3"))
    assert after is not None and after.state is JobState.FAILED
    job = store.get(job_id)
    assert job is not None and (job.state, job.attempts) == (JobState.FAILED, MAX_ATTEMPTS)
    assert job.last_error == f"gave up after {MAX_ATTEMPTS} attempts: timeout 3"
    assert store.claim("w", job_id).lease is None


def test_an_explicit_delay_overrides_the_backoff(store: Store, clock: Clock) -> None:
    job_id = enqueue(store)
    after = store.fail(take(store, job_id), Outcome.failure("Retry-After: 90", delay=90))
    assert after is not None and after.wait == 90
    assert store.get(job_id).run_after == clock.now + 90  # type: ignore[union-attr]


def test_a_permanent_error_fails_at_once_with_its_error_cut(store: Store) -> None:
    job_id = enqueue(store)
    after = store.fail(take(store, job_id), Outcome.permanent("x" * 100_000))
    assert after is not None and after.state is JobState.FAILED
    error = store.get(job_id).last_error  # type: ignore[union-attr]
    assert error is not None and len(error) == MAX_ERROR_CHARS and error.endswith("…")


def test_deferrals_do_not_spend_attempts_but_are_bounded(store: Store) -> None:
    job_id = enqueue(store)
    for _ in range(MAX_DEFERRALS):
        after = store.fail(take(store, job_id), Outcome.deferred("rate limited", 0))
        assert after is not None and after.state is JobState.QUEUED
    job = store.get(job_id)
    assert job is not None and (job.attempts, job.deferrals) == (0, MAX_DEFERRALS)
    after = store.fail(take(store, job_id), Outcome.deferred("rate limited", 0))
    assert after is not None and after.state is JobState.FAILED
    assert after.error == f"gave up after {MAX_DEFERRALS} deferrals: rate limited"


# --------------------------------------------------------------------------- the runner


def run_job(store: Store, job_id: int, handler, **options: Any):
    lease = take(store, job_id)
    return asyncio.run(asyncio.wait_for(Runner(store, handler, **options).run(lease), 30))


def test_the_runner_records_success_and_hands_the_handler_a_context(store: Store) -> None:
    job_id = store.enqueue(KEY, "review", payload(), delivery_id="d-9").job_id
    seen: dict[str, Any] = {}

    async def handler(job: Job, ctx: JobContext) -> None:
        seen.update(attempts=job.attempts, delivery=ctx.delivery_id, superseded=ctx.is_superseded())
        ctx.save_data(check_run_id=5)
        ctx.heartbeat()
        assert ctx.data == {"check_run_id": 5} and ctx.superseded_data() == []

    settled = run_job(store, job_id, handler)
    assert settled.after.state is JobState.DONE and settled.again_in is None
    assert seen == {"attempts": 1, "delivery": "d-9", "superseded": False}
    assert store.get(job_id).data == {"check_run_id": 5}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("error", "after", "again_in", "attempts", "last_error"),
    [
        (lambda now: RuntimeError("boom"), JobState.QUEUED, 5.0, 1, "RuntimeError: boom"),
        (
            lambda now: PermanentJobError("PR is gone"),
            JobState.FAILED,
            None,
            1,
            "PermanentJobError: PR is gone",
        ),
        (
            lambda now: RetryLater(now + 30, "rate limited"),
            JobState.QUEUED,
            30.0,
            0,
            "RetryLater: rate limited",
        ),
    ],
    ids=["error-backs-off", "permanent-fails", "retry-later-defers"],
)
def test_the_runner_turns_handler_outcomes_into_the_policys_states(
    store: Store, clock: Clock, error, after, again_in, attempts, last_error
) -> None:
    job_id = enqueue(store)

    async def handler(job: Job, ctx: JobContext) -> None:
        raise error(clock.now)

    settled = run_job(store, job_id, handler)
    assert (settled.after.state, settled.again_in) == (after, again_in)
    job = store.get(job_id)
    assert job is not None and (job.state, job.attempts, job.last_error) == (
        after,
        attempts,
        last_error,
    )


def test_the_runner_times_out_a_job_and_retries_it(store: Store) -> None:
    job_id = enqueue(store)

    async def handler(job: Job, ctx: JobContext) -> None:
        await asyncio.sleep(10)

    settled = run_job(store, job_id, handler, job_timeout=0.1)
    assert settled.again_in is not None
    assert store.get(job_id).last_error == "timed out after 0.1 s"  # type: ignore[union-attr]


def test_a_handler_that_lost_its_job_stops_quietly(store: Store) -> None:
    job_id = enqueue(store)

    async def handler(job: Job, ctx: JobContext) -> None:
        stolen = Lease(job, "thief")
        assert store.release(ctx.lease) is not None  # e.g. swept as stale ...
        take(store, job_id, "thief")  # ... and taken by another worker
        with pytest.raises(JobLost):
            ctx.heartbeat()
        with pytest.raises(JobLost):
            ctx.save_data(check_run_id=1)
        store.complete(stolen)

    settled = run_job(store, job_id, handler)
    assert settled.lost and settled.after is None
    assert state(store, job_id) is JobState.DONE  # the thief's verdict, untouched by ours


def test_the_runner_stops_a_handler_whose_lease_was_lost(store: Store) -> None:
    job_id = enqueue(store)
    cancelled = []

    async def handler(job: Job, ctx: JobContext) -> None:
        store.release(ctx.lease)
        take(store, job_id, "thief")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    settled = run_job(store, job_id, handler, renew_every=0.05)
    assert cancelled and settled.lost
    assert state(store, job_id) is JobState.RUNNING  # the thief's run: not ours to record


# --------------------------------------------------------------------------- installations


def test_forgotten_installations_reach_every_job_runner_once(store: Store) -> None:
    store.forget_installation(5)  # before start-up: nothing to drop
    start = store.last_forgotten()
    assert store.forgotten_after(start) == ([], start)
    dropped: list[int] = []
    ran: list[int] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    first, second = (
        forgetting(handler, store, dropped.append),
        forgetting(handler, store, dropped.append),
    )  # two processes running jobs
    store.forget_installation(7)
    store.forget_installation(9)
    for wrapped in (first, second, first):
        job_id = enqueue(store, key=f"o/r#{len(ran)}")
        asyncio.run(Runner(store, wrapped).run(take(store, job_id)))
    assert dropped == [7, 9, 7, 9] and len(ran) == 3


# --------------------------------------------------------------------------- ledger, health


def test_the_ledger_adds_up_across_runs(store: Store) -> None:
    for tokens in (100, 50):
        store.add_spend(
            KEY,
            RunSpend(
                model="gpt-4o-mini",
                prompt_tokens=tokens,
                completion_tokens=10,
                cost_usd=0.01,
                installation_id=42,
            ),
        )
    spent = store.spent(KEY)
    assert (spent.prompt_tokens, spent.completion_tokens, spent.runs) == (150, 20, 2)
    assert spent.cost_usd == pytest.approx(0.02)
    assert store.spent("octo/other#2").runs == 0
    (row,) = store.usage()
    assert (row.installation_id, row.repo, row.prompt_tokens, row.runs) == (
        42,
        "octo/hello",
        150,
        2,
    )


def test_a_working_store_is_writable_and_counts_its_queue(store: Store) -> None:
    assert store.writable()
    enqueue(store)
    enqueue(store, key="octo/other#2")
    assert store.counts()["queued"] == 2
    assert store.max_attempts == MAX_ATTEMPTS


# --------------------------------------------------------------------------- the protocol


def _protocol_methods() -> list[str]:
    return sorted(
        name
        for name, value in vars(Store).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    )


@pytest.mark.parametrize("name", _protocol_methods())
def test_both_stores_have_the_protocols_signature(name: str) -> None:
    """Same names, same parameters, same annotations: a caller never asks which store."""
    from bot.runtime.queue.redis_store import RedisStore

    def shape(owner: type) -> Any:
        member = getattr(owner, name)
        if isinstance(member, property):
            return inspect.signature(member.fget).return_annotation
        signature = inspect.signature(member)
        if name == "atomic":  # a generator context manager: what it yields is the store's own
            return signature.parameters
        return signature

    assert shape(SqliteStore) == shape(Store)
    assert shape(RedisStore) == shape(Store)
