"""The Redis store and the job runner against a real Redis, in-process (no arq worker).

The process-level behaviour (web → Redis → ``docgen worker``, kill -9, two web
processes) is in ``test_redis_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import deserialize_job
from arq.worker import Retry
from redis.exceptions import RedisError

from bot.docstrings.cache import RedisCache
from bot.docstrings.models import DocParts
from bot.runtime.queue.arq_worker import ArqDriver
from bot.runtime.queue.policy import JobState, Outcome
from bot.runtime.queue.redis_intake import DELIVERY_CLAIM, JOB_FUNCTION
from bot.runtime.queue.redis_store import BUSY_POLL, RedisStore
from bot.runtime.queue.runner import forgetting
from bot.runtime.queue.store import BatchItem, JobLost, PermanentJobError, RetryLater
from tests import redis_helpers
from tests.redis_helpers import free_port, redis_client

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

KEY = "octo/demo#1"
WEEK = 7 * 24 * 3600


@pytest.fixture
def store(redis_url, ns):
    j = RedisStore.from_url(redis_url, prefix=ns, lease=2.0, max_attempts=2, rng=lambda: 0.5)
    yield j
    j.close()


def enqueue(store, key=KEY, delivery_id="d1", **payload):
    return store.enqueue(key, "review", {"number": 1, **payload}, delivery_id=delivery_id)


def test_a_delivery_is_recorded_once_and_kept_a_week(store):
    assert store.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert not store.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert store.delivery_seen("d1") and not store.delivery_seen("d2")
    assert WEEK - 5 < store.client.ttl(f"{store.prefix}:delivery:d1") <= WEEK


def test_in_a_block_a_delivery_is_a_claim_until_its_job_is_written(store):
    key = f"{store.prefix}:delivery:d1"
    with store.atomic():
        assert store.record_delivery("d1", "pull_request", "opened", outcome="run")
        assert store.client.ttl(key) <= DELIVERY_CLAIM  # a web process killed here: redeliverable
        enqueue(store)
        assert store.client.ttl(key) > WEEK - 5  # final, in the job's own transaction
    with store.atomic():  # an ignored event: final when the block ends
        assert store.record_delivery("d2", "ping", None, outcome="ignore")
    assert store.client.ttl(f"{store.prefix}:delivery:d2") > WEEK - 5


def test_a_failed_block_forgets_its_delivery(store):
    with pytest.raises(RuntimeError), store.atomic():
        assert store.record_delivery("d1", "pull_request", "opened", outcome="run")
        raise RuntimeError("crash between the two writes")
    assert not store.delivery_seen("d1")
    assert store.record_delivery("d1", "pull_request", "opened", outcome="run")


def test_a_batch_records_and_enqueues_in_pipelines_with_one_by_one_results(store):
    assert store.record_delivery("seen-before", "pull_request", "opened", outcome="run")
    items = [
        BatchItem("b1", "pull_request", "opened", "run", (KEY, "review", {"n": 1})),
        BatchItem("b2", "pull_request", "synchronize", "run", (KEY, "review", {"n": 2})),
        BatchItem("b1", "pull_request", "opened", "run", (KEY, "review", {"n": 1})),  # again
        BatchItem("p1", "ping", None, "ignore", None),
        BatchItem("seen-before", "pull_request", "opened", "run", (KEY, "review", {})),
        BatchItem("o1", "pull_request", "opened", "run", ("octo/other#2", "review", {})),
    ]
    commands = []
    real = store.client.pipeline

    def counting(*args, **kwargs):
        pipe = real(*args, **kwargs)
        commands.append(pipe)
        return pipe

    store.client.pipeline = counting
    results = store.record_batch(items)
    store.client.pipeline = real
    assert len(commands) == 2  # claims, then scripts: two round trips for six deliveries
    b1, b2, again, ping, seen, other = results
    assert b1[0] and b2[0] and ping == (True, None) and other[0]
    assert again == (False, None) and seen == (False, None)
    assert b2[1].coalesced and not b1[1].coalesced and not other[1].coalesced
    for delivery in ("b1", "b2", "p1", "o1"):  # final: kept a week, not a 60 s claim
        assert store.client.ttl(f"{store.prefix}:delivery:{delivery}") > WEEK - 5
    queued = {j.payload.get("n") for j in (store.get(b2[1].job_id), store.get(b1[1].job_id))}
    assert queued == {1, 2}
    assert store.get(b1[1].job_id).state == JobState.SUPERSEDED
    # arq's queue: one entry for the PR (the newest head) and one for the other PR.
    assert store.client.zcard(store.queue_name) == 2


def test_a_failing_script_fails_its_delivery_alone_and_gives_back_the_claim(store):
    real = store._enqueue_call

    def broken(key, kind, payload, delivery_id, pending):
        keys, args = real(key, kind, payload, delivery_id, pending)
        if delivery_id == "bad":
            args[9] = "not-a-number"  # the script's tonumber() fails on it
        return keys, args

    store._enqueue_call = broken
    good, bad = store.record_batch(
        [
            BatchItem("good", "pull_request", "opened", "run", (KEY, "review", {})),
            BatchItem("bad", "pull_request", "opened", "run", ("octo/x#3", "review", {})),
        ]
    )
    assert good[0] is True
    assert isinstance(bad, RedisError)
    assert not store.delivery_seen("bad")  # GitHub's redelivery will be taken as new
    store._enqueue_call = real
    assert store.record_batch(
        [BatchItem("bad", "pull_request", "opened", "run", ("octo/x#3", "review", {}))]
    )[0][0]


def test_enqueue_writes_our_job_and_arqs(store):
    result = enqueue(store, head_sha="a" * 40)
    assert (result.job_id, result.coalesced, result.behind) == (1, False, None)
    job = store.get(result.job_id)
    assert job.state == JobState.QUEUED and job.key == KEY and job.attempts == 0
    assert job.payload == {"number": 1, "head_sha": "a" * 40} and job.delivery_id == "d1"
    arq_id = store.arq_job_id(result.job_id)
    assert store.client.zscore(store.queue_name, arq_id) is not None
    raw = store.client.get(job_key_prefix + arq_id)
    definition = deserialize_job(raw.encode(), deserializer=json.loads)  # JSON, never pickle
    assert definition.function == JOB_FUNCTION and list(definition.args) == [result.job_id]
    assert store.counts() == {"queued": 1}


def arq_keys(store, job_id):
    """Which of arq's structures still hold job ``job_id``: queue, job, in-progress."""
    arq_id = store.arq_job_id(job_id)
    return (
        store.client.zscore(store.queue_name, arq_id) is not None,
        store.client.exists(job_key_prefix + arq_id) == 1,
        store.client.exists(in_progress_key_prefix + arq_id) == 1,
    )


def test_pushes_while_no_worker_runs_leave_one_arq_entry_per_pr(store):
    ids = [enqueue(store, delivery_id=f"d{i}", head=i).job_id for i in range(6)]
    other = enqueue(store, key="octo/demo#2", delivery_id="other").job_id
    newest = ids[-1]
    queued = store.client.zrange(store.queue_name, 0, -1)
    assert sorted(queued) == sorted([store.arq_job_id(newest), store.arq_job_id(other)])
    assert store.counts() == {"queued": 2}
    for job_id in ids[:-1]:
        assert store.get(job_id).state == JobState.SUPERSEDED
        queue, body, in_progress = arq_keys(store, job_id)
        assert not queue and not body  # nothing left for a worker to pull
        assert in_progress  # the tombstone that makes a racing arq start give up ...
        assert store.client.pttl(in_progress_key_prefix + store.arq_job_id(job_id)) <= 1000
    time.sleep(1.1)  # ... for a moment only
    assert not any(arq_keys(store, ids[0]))
    assert store.get(newest).payload["head"] == 5
    assert arq_keys(store, newest) == (True, True, False)


def test_a_superseded_job_arq_has_started_stays_for_its_no_op_run(store):
    first = enqueue(store).job_id
    arq_id = store.arq_job_id(first)
    store.client.set(in_progress_key_prefix + arq_id, "1", px=60_000)  # arq took it
    second = enqueue(store, delivery_id="d2")
    assert second.coalesced and arq_keys(store, first) == (True, True, True)
    claim = store.claim("w1", first, ref=arq_id)
    assert claim.lease is None and claim.reason == "already superseded"


def test_a_deferred_job_superseded_in_the_queue_leaves_its_check_run_to_the_newer_one(store):
    first = enqueue(store).job_id
    lease = store.claim("w1", first, ref=store.arq_job_id(first)).lease
    store.save_data(lease, {"check_run_id": 7, "check_run_sha": "a"})
    # GitHub failed: deferred; arq's run ends, its in-progress key goes, the entry stays.
    assert store.fail(lease, Outcome.deferred("busy", 600)).state == JobState.QUEUED
    store.client.delete(in_progress_key_prefix + store.arq_job_id(first))
    second = enqueue(store, delivery_id="d2").job_id
    assert arq_keys(store, first)[:2] == (False, False)
    assert store.counts() == {"queued": 1}
    assert store.superseded_data(second) == [{"check_run_id": 7, "check_run_sha": "a"}]


def test_superseded_data_follows_a_long_chain_in_one_round_trip(store):
    first = enqueue(store).job_id
    lease = store.claim("w1", first).lease
    store.save_data(lease, {"check_run_id": 1, "check_run_sha": "a"})
    store.fail(lease, Outcome.failure("boom"))
    last = [enqueue(store, delivery_id=f"d{i}").job_id for i in range(120)][-1]
    assert store.superseded_data(first) == []  # the script is loaded from here on
    calls = []
    execute = store.client.execute_command
    store.client.execute_command = lambda *a, **k: calls.append(a[0]) or execute(*a, **k)
    try:
        assert store.superseded_data(last) == [{"check_run_id": 1, "check_run_sha": "a"}]
    finally:
        del store.client.execute_command
    assert calls == ["EVALSHA"]


def test_the_ack_path_is_two_round_trips(store):
    enqueue(store, key="octo/demo#9", delivery_id="warm")  # scripts loaded once
    calls = []
    execute = store.client.execute_command
    store.client.execute_command = lambda *a, **k: calls.append(a[0]) or execute(*a, **k)
    store.client.pipeline = None  # no WATCH/MULTI either
    try:
        for delivery in ("d1", "d2"):  # the second one coalesces
            with store.atomic():
                assert store.record_delivery(delivery, "pull_request", "sync", outcome="run")
                enqueue(store, delivery_id=delivery)
    finally:
        del store.client.execute_command, store.client.pipeline
    assert calls == ["SET", "EVALSHA"] * 2
    assert store.client.ttl(f"{store.prefix}:delivery:d2") > WEEK - 5


def test_a_dead_run_is_taken_over_after_one_lease_with_its_data(store):
    store.lease = 0.3
    job_id = enqueue(store).job_id
    dead = store.claim("dead", job_id, ref="arq-1").lease
    store.client.set(in_progress_key_prefix + "arq-1", "1", px=60_000)
    assert store.renew(dead)
    assert 0 < store.client.pttl(in_progress_key_prefix + "arq-1") <= 300  # arq's, shortened
    store.save_data(dead, {"check_run_id": 99})
    assert store.claim("alive", job_id).retry_in == BUSY_POLL  # the lease still holds
    time.sleep(0.4)  # no renewal: the worker was killed
    alive = store.claim("alive", job_id).lease
    assert alive.job.attempts == 2 and alive.job.data == {"check_run_id": 99}
    assert "lost during attempt 1" in store.get(job_id).last_error
    # The dead run can change nothing any more.
    assert store.save_data(dead, {"check_run_id": 1}) is None
    assert not store.complete(dead)
    assert not store.renew(dead)
    assert store.complete(alive)
    assert store.client.get(f"{store.prefix}:pr:{KEY}:lock") is None  # the PR is free


def test_a_dead_run_of_its_last_attempt_fails(store):
    store.lease = 0.2
    job_id = enqueue(store).job_id
    for token in ("a", "b"):
        assert store.claim(token, job_id).lease is not None
        time.sleep(0.3)
    claim = store.claim("c", job_id)
    assert claim.lease is None and "gave up after 2 attempts" in claim.reason
    assert store.get(job_id).state == JobState.FAILED


def test_a_forgotten_installation_reaches_every_worker_and_redis_trouble_runs_the_job(
    redis_url, ns, monkeypatch, caplog
):
    web, worker = (RedisStore.from_url(redis_url, prefix=ns) for _ in range(2))
    dropped, ran = [], []

    async def handler(job, ctx):
        ran.append(job.id)

    wrapped = forgetting(handler, worker, dropped.append)
    web.forget_installation(1)  # the web process got `installation` deleted/suspend
    run(ArqDriver(worker, wrapped), enqueue(worker, delivery_id="d1").job_id)
    assert dropped == [1]

    def down(cursor):
        raise RedisError("connection refused")

    monkeypatch.setattr(worker, "forgotten_after", down)
    web.forget_installation(2)
    run(ArqDriver(worker, wrapped), enqueue(worker, key="octo/demo#2", delivery_id="d2").job_id)
    assert len(ran) == 2 and dropped == [1]  # the job ran, with a warning
    assert "could not read the installations forgotten" in caplog.text
    monkeypatch.undo()
    run(ArqDriver(worker, wrapped), enqueue(worker, key="octo/demo#3", delivery_id="d3").job_id)
    assert dropped == [1, 2]  # read once Redis answers again
    web.close()
    worker.close()


def test_redis_cache_round_trip_and_unreadable_entries(redis_url, ns):
    client = redis_client(redis_url)
    cache = RedisCache(client, prefix=ns, ttl=60)
    parts = DocParts(summary="Add two numbers.", params=(("a", "first"), ("b", "second")))
    assert cache.get("k") is None
    cache.put("k", parts)
    assert cache.get("k") == parts
    assert 0 < client.ttl(f"{ns}:cache:k") <= 60
    client.set(f"{ns}:cache:bad", "{not json")
    assert cache.get("bad") is None
    client.close()


def test_redis_trouble_is_a_miss_and_an_unhealthy_journal(caplog):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = RedisStore.from_url(url)
    cache = RedisCache(store.client)
    assert cache.get("k") is None
    cache.put("k", DocParts(summary="Something."))
    assert not store.writable()
    assert "docstring cache unavailable" in caplog.text
    store.close()


# ------------------------------------------------------------------ the job runner


def run(runner: ArqDriver, job_id: int) -> Retry | None:
    """Run one job as arq would; the Retry arq would get, or None."""
    try:
        asyncio.run(runner.run(job_id, "arq-id"))
    except Retry as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("error", "state", "retry_in", "attempts"),
    [
        (lambda: RuntimeError("boom"), JobState.QUEUED, 3.75, 1),
        (lambda: PermanentJobError("PR is gone"), JobState.FAILED, None, 1),
        (lambda: RetryLater(time.time() + 30, "rate limited"), JobState.QUEUED, 30, 0),
    ],
    ids=["error-backs-off", "permanent-fails", "retry-later-defers"],
)
def test_the_runner_turns_handler_outcomes_into_arq_retries(
    store, error, state, retry_in, attempts
):
    job_id = enqueue(store).job_id

    async def handler(job, ctx):
        raise error()

    retry = run(ArqDriver(store, handler), job_id)
    job = store.get(job_id)
    assert (job.state, job.attempts) == (state, attempts)
    if retry_in is None:
        assert retry is None
    else:
        assert retry is not None and retry.defer_score == pytest.approx(retry_in * 1000, abs=1500)


def test_the_runner_defers_a_job_whose_pr_is_busy(store):
    first, second = enqueue(store).job_id, enqueue(store, key=KEY, delivery_id="d2").job_id
    store.client.set(f"{store.prefix}:pr:{KEY}:lock", "someone-else", px=5000)
    called = []

    async def handler(job, ctx):
        called.append(job.id)

    retry = run(ArqDriver(store, handler), second)
    assert retry is not None and retry.defer_score == BUSY_POLL * 1000 and not called
    assert store.get(second).attempts == 0 and store.get(first).state == JobState.SUPERSEDED


def test_the_runner_stops_a_handler_whose_lease_was_taken(store):
    store.lease = 0.3
    job_id = enqueue(store).job_id
    cancelled = []

    async def handler(job, ctx):
        store.client.set(f"{store.prefix}:pr:{KEY}:lock", "thief", px=5000)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    started = time.monotonic()
    retry = run(ArqDriver(store, handler), job_id)
    assert cancelled and time.monotonic() - started < 2
    assert retry is not None  # left in arq's queue for whoever owns it now
    assert store.get(job_id).state == JobState.RUNNING  # untouched: not ours to record


def test_a_handler_that_lost_its_job_stops_quietly(store):
    job_id = enqueue(store).job_id

    async def handler(job, ctx):
        store.client.delete(f"{store.prefix}:pr:{KEY}:lock")
        store.client.set(f"{store.prefix}:pr:{KEY}:lock", "thief")
        with pytest.raises(JobLost):
            ctx.heartbeat()
        ctx.save_data(check_run_id=1)

    assert run(ArqDriver(store, handler), job_id) is not None
    assert store.get(job_id).data == {}
