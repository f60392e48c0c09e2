"""The Redis journal and the job runner against a real Redis, in-process (no arq worker).

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

from bot.cache import RedisCache
from bot.github.connection import make_app_github
from bot.jobs import JobLost, JobState, PermanentJobError, RetryLater
from bot.models import DocParts
from bot.redisq import (
    BUSY_POLL,
    DELIVERY_CLAIM,
    JOB_FUNCTION,
    BatchItem,
    JobRunner,
    RedisInstallationClients,
    RedisJournal,
)
from tests import redis_helpers
from tests.redis_helpers import free_port, redis_client

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

KEY = "octo/demo#1"
WEEK = 7 * 24 * 3600


@pytest.fixture
def journal(redis_url, ns):
    j = RedisJournal.from_url(redis_url, prefix=ns, lease=2.0, max_attempts=2, rng=lambda: 0.5)
    yield j
    j.close()


def enqueue(journal, key=KEY, delivery_id="d1", **payload):
    return journal.enqueue(key, "review", {"number": 1, **payload}, delivery_id=delivery_id)


def test_a_delivery_is_recorded_once_and_kept_a_week(journal):
    assert journal.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert not journal.record_delivery("d1", "pull_request", "opened", outcome="run")
    assert journal.delivery_seen("d1") and not journal.delivery_seen("d2")
    assert WEEK - 5 < journal.client.ttl(f"{journal.prefix}:delivery:d1") <= WEEK


def test_in_a_block_a_delivery_is_a_claim_until_its_job_is_written(journal):
    key = f"{journal.prefix}:delivery:d1"
    with journal.atomic():
        assert journal.record_delivery("d1", "pull_request", "opened", outcome="run")
        assert journal.client.ttl(key) <= DELIVERY_CLAIM  # a web process killed here: redeliverable
        enqueue(journal)
        assert journal.client.ttl(key) > WEEK - 5  # final, in the job's own transaction
    with journal.atomic():  # an ignored event: final when the block ends
        assert journal.record_delivery("d2", "ping", None, outcome="ignore")
    assert journal.client.ttl(f"{journal.prefix}:delivery:d2") > WEEK - 5


def test_a_failed_block_forgets_its_delivery(journal):
    with pytest.raises(RuntimeError), journal.atomic():
        assert journal.record_delivery("d1", "pull_request", "opened", outcome="run")
        raise RuntimeError("crash between the two writes")
    assert not journal.delivery_seen("d1")
    assert journal.record_delivery("d1", "pull_request", "opened", outcome="run")


def test_a_batch_records_and_enqueues_in_pipelines_with_one_by_one_results(journal):
    assert journal.record_delivery("seen-before", "pull_request", "opened", outcome="run")
    items = [
        BatchItem("b1", "pull_request", "opened", "run", (KEY, "review", {"n": 1})),
        BatchItem("b2", "pull_request", "synchronize", "run", (KEY, "review", {"n": 2})),
        BatchItem("b1", "pull_request", "opened", "run", (KEY, "review", {"n": 1})),  # again
        BatchItem("p1", "ping", None, "ignore", None),
        BatchItem("seen-before", "pull_request", "opened", "run", (KEY, "review", {})),
        BatchItem("o1", "pull_request", "opened", "run", ("octo/other#2", "review", {})),
    ]
    commands = []
    real = journal.client.pipeline

    def counting(*args, **kwargs):
        pipe = real(*args, **kwargs)
        commands.append(pipe)
        return pipe

    journal.client.pipeline = counting
    results = journal.record_batch(items)
    journal.client.pipeline = real
    assert len(commands) == 2  # claims, then scripts: two round trips for six deliveries
    b1, b2, again, ping, seen, other = results
    assert b1[0] and b2[0] and ping == (True, None) and other[0]
    assert again == (False, None) and seen == (False, None)
    assert b2[1].coalesced and not b1[1].coalesced and not other[1].coalesced
    for delivery in ("b1", "b2", "p1", "o1"):  # final: kept a week, not a 60 s claim
        assert journal.client.ttl(f"{journal.prefix}:delivery:{delivery}") > WEEK - 5
    queued = {j.payload.get("n") for j in (journal.get(b2[1].job_id), journal.get(b1[1].job_id))}
    assert queued == {1, 2}
    assert journal.get(b1[1].job_id).state == JobState.SUPERSEDED
    # arq's queue: one entry for the PR (the newest head) and one for the other PR.
    assert journal.client.zcard(journal.queue_name) == 2


def test_a_failing_script_fails_its_delivery_alone_and_gives_back_the_claim(journal):
    real = journal._enqueue_call

    def broken(key, kind, payload, delivery_id, pending):
        keys, args = real(key, kind, payload, delivery_id, pending)
        if delivery_id == "bad":
            args[9] = "not-a-number"  # the script's tonumber() fails on it
        return keys, args

    journal._enqueue_call = broken
    good, bad = journal.record_batch(
        [
            BatchItem("good", "pull_request", "opened", "run", (KEY, "review", {})),
            BatchItem("bad", "pull_request", "opened", "run", ("octo/x#3", "review", {})),
        ]
    )
    assert good[0] is True
    assert isinstance(bad, RedisError)
    assert not journal.delivery_seen("bad")  # GitHub's redelivery will be taken as new
    journal._enqueue_call = real
    assert journal.record_batch(
        [BatchItem("bad", "pull_request", "opened", "run", ("octo/x#3", "review", {}))]
    )[0][0]


def test_enqueue_writes_our_job_and_arqs(journal):
    result = enqueue(journal, head_sha="a" * 40)
    assert (result.job_id, result.coalesced, result.behind) == (1, False, None)
    job = journal.get(result.job_id)
    assert job.state == JobState.QUEUED and job.key == KEY and job.attempts == 0
    assert job.payload == {"number": 1, "head_sha": "a" * 40} and job.delivery_id == "d1"
    arq_id = journal.arq_job_id(result.job_id)
    assert journal.client.zscore(journal.queue_name, arq_id) is not None
    raw = journal.client.get(job_key_prefix + arq_id)
    definition = deserialize_job(raw.encode(), deserializer=json.loads)  # JSON, never pickle
    assert definition.function == JOB_FUNCTION and list(definition.args) == [result.job_id]
    assert journal.counts() == {"queued": 1}


def test_a_newer_job_supersedes_a_queued_one(journal):
    first = enqueue(journal, delivery_id="d1")
    second = enqueue(journal, delivery_id="d2")
    assert second.coalesced and second.behind is None
    assert journal.get(first.job_id).state == JobState.SUPERSEDED
    assert journal.is_superseded(first.job_id) and not journal.is_superseded(second.job_id)
    claim = journal.claim(first.job_id, "w1")
    assert claim.job is None and "superseded" in claim.reason  # arq's run of it is a no-op
    assert journal.claim(second.job_id, "w1").job is not None


def arq_keys(journal, job_id):
    """Which of arq's structures still hold job ``job_id``: queue, job, in-progress."""
    arq_id = journal.arq_job_id(job_id)
    return (
        journal.client.zscore(journal.queue_name, arq_id) is not None,
        journal.client.exists(job_key_prefix + arq_id) == 1,
        journal.client.exists(in_progress_key_prefix + arq_id) == 1,
    )


def test_pushes_while_no_worker_runs_leave_one_arq_entry_per_pr(journal):
    ids = [enqueue(journal, delivery_id=f"d{i}", head=i).job_id for i in range(6)]
    other = enqueue(journal, key="octo/demo#2", delivery_id="other").job_id
    newest = ids[-1]
    queued = journal.client.zrange(journal.queue_name, 0, -1)
    assert sorted(queued) == sorted([journal.arq_job_id(newest), journal.arq_job_id(other)])
    assert journal.counts() == {"queued": 2}
    for job_id in ids[:-1]:
        assert journal.get(job_id).state == JobState.SUPERSEDED
        queue, body, in_progress = arq_keys(journal, job_id)
        assert not queue and not body  # nothing left for a worker to pull
        assert in_progress  # the tombstone that makes a racing arq start give up ...
        assert journal.client.pttl(in_progress_key_prefix + journal.arq_job_id(job_id)) <= 1000
    time.sleep(1.1)  # ... for a moment only
    assert not any(arq_keys(journal, ids[0]))
    assert journal.get(newest).payload["head"] == 5
    assert arq_keys(journal, newest) == (True, True, False)


def test_a_superseded_job_arq_has_started_stays_for_its_no_op_run(journal):
    first = enqueue(journal).job_id
    arq_id = journal.arq_job_id(first)
    journal.client.set(in_progress_key_prefix + arq_id, "1", px=60_000)  # arq took it
    second = enqueue(journal, delivery_id="d2")
    assert second.coalesced and arq_keys(journal, first) == (True, True, True)
    claim = journal.claim(first, "w1", arq_job_id=arq_id)
    assert claim.job is None and claim.reason == "already superseded"


def test_a_deferred_job_superseded_in_the_queue_leaves_its_check_run_to_the_newer_one(journal):
    first = enqueue(journal).job_id
    journal.claim(first, "w1", arq_job_id=journal.arq_job_id(first))
    journal.save_data(first, {"check_run_id": 7, "check_run_sha": "a"}, worker_id="w1")
    # GitHub failed: deferred; arq's run ends, its in-progress key goes, the entry stays.
    assert journal.fail(first, "busy", token="w1", retry=True, delay=600)[0] == JobState.QUEUED
    journal.client.delete(in_progress_key_prefix + journal.arq_job_id(first))
    second = enqueue(journal, delivery_id="d2").job_id
    assert arq_keys(journal, first)[:2] == (False, False)
    assert journal.counts() == {"queued": 1}
    assert journal.superseded_data(second) == [{"check_run_id": 7, "check_run_sha": "a"}]


def test_superseded_data_follows_a_long_chain_in_one_round_trip(journal):
    first = enqueue(journal).job_id
    journal.claim(first, "w1")
    journal.save_data(first, {"check_run_id": 1, "check_run_sha": "a"}, worker_id="w1")
    journal.fail(first, "boom", token="w1", retry=True)
    last = [enqueue(journal, delivery_id=f"d{i}").job_id for i in range(120)][-1]
    assert journal.superseded_data(first) == []  # the script is loaded from here on
    calls = []
    execute = journal.client.execute_command
    journal.client.execute_command = lambda *a, **k: calls.append(a[0]) or execute(*a, **k)
    try:
        assert journal.superseded_data(last) == [{"check_run_id": 1, "check_run_sha": "a"}]
    finally:
        del journal.client.execute_command
    assert calls == ["EVALSHA"]


def test_the_ack_path_is_two_round_trips(journal):
    enqueue(journal, key="octo/demo#9", delivery_id="warm")  # scripts loaded once
    calls = []
    execute = journal.client.execute_command
    journal.client.execute_command = lambda *a, **k: calls.append(a[0]) or execute(*a, **k)
    journal.client.pipeline = None  # no WATCH/MULTI either
    try:
        for delivery in ("d1", "d2"):  # the second one coalesces
            with journal.atomic():
                assert journal.record_delivery(delivery, "pull_request", "sync", outcome="run")
                enqueue(journal, delivery_id=delivery)
    finally:
        del journal.client.execute_command, journal.client.pipeline
    assert calls == ["SET", "EVALSHA"] * 2
    assert journal.client.ttl(f"{journal.prefix}:delivery:d2") > WEEK - 5


def test_a_running_job_is_told_and_the_newer_one_waits_for_it(journal):
    first = enqueue(journal)
    assert journal.claim(first.job_id, "w1").job.attempts == 1
    second = enqueue(journal, delivery_id="d2")
    assert second.behind == first.job_id and not second.coalesced
    assert journal.is_superseded(first.job_id)
    busy = journal.claim(second.job_id, "w2")
    assert busy.job is None and busy.retry_in == BUSY_POLL
    assert journal.complete(first.job_id, token="w1")
    assert journal.get(first.job_id).state == JobState.DONE
    assert journal.claim(second.job_id, "w2").job is not None


def test_superseded_data_names_the_check_runs_left_open(journal):
    first = enqueue(journal)
    journal.claim(first.job_id, "w1")
    journal.save_data(first.job_id, {"check_run_id": 7, "check_run_sha": "a"}, worker_id="w1")
    assert journal.fail(first.job_id, "boom", token="w1", retry=True)[0] == JobState.QUEUED
    second = enqueue(journal, delivery_id="d2")
    third = enqueue(journal, delivery_id="d3")
    journal.claim(third.job_id, "w2")
    assert journal.get(second.job_id).state == JobState.SUPERSEDED
    assert journal.superseded_data(third.job_id) == [{"check_run_id": 7, "check_run_sha": "a"}]
    journal.complete(third.job_id, token="w2")
    fourth = enqueue(journal, delivery_id="d4")
    assert journal.superseded_data(fourth.job_id) == []  # the done one concluded its own


def test_a_dead_run_is_taken_over_after_one_lease_with_its_data(journal):
    journal.lease = 0.3
    job_id = enqueue(journal).job_id
    journal.claim(job_id, "dead", arq_job_id="arq-1")
    journal.client.set(in_progress_key_prefix + "arq-1", "1", px=60_000)
    assert journal.renew(job_id, KEY, "dead", arq_job_id="arq-1")
    assert 0 < journal.client.pttl(in_progress_key_prefix + "arq-1") <= 300  # arq's, shortened
    journal.save_data(job_id, {"check_run_id": 99}, worker_id="dead")
    assert journal.claim(job_id, "alive").retry_in == BUSY_POLL  # the lease still holds
    time.sleep(0.4)  # no renewal: the worker was killed
    claim = journal.claim(job_id, "alive")
    assert claim.job.attempts == 2 and claim.job.data == {"check_run_id": 99}
    assert "lost during attempt 1" in journal.get(job_id).last_error
    # The dead run can change nothing any more.
    assert journal.save_data(job_id, {"check_run_id": 1}, worker_id="dead") is None
    assert not journal.complete(job_id, token="dead")
    assert not journal.renew(job_id, KEY, "dead")
    assert journal.complete(job_id, token="alive")


def test_a_dead_run_of_its_last_attempt_fails(journal):
    journal.lease = 0.2
    job_id = enqueue(journal).job_id
    for token in ("a", "b"):
        assert journal.claim(job_id, token).job is not None
        time.sleep(0.3)
    claim = journal.claim(job_id, "c")
    assert claim.job is None and "gave up after 2 attempts" in claim.reason
    assert journal.get(job_id).state == JobState.FAILED


def test_failures_back_off_then_give_up(journal):
    job_id = enqueue(journal).job_id
    journal.claim(job_id, "w")
    state, wait = journal.fail(job_id, "RuntimeError: boom", token="w", retry=True)
    assert state == JobState.QUEUED and wait == 3.75  # backoff_delay(1) with rng 0.5
    assert journal.get(job_id).run_after == pytest.approx(time.time() + 3.75, abs=1)
    journal.claim(job_id, "w")
    state, _ = journal.fail(job_id, "RuntimeError: boom", token="w", retry=True)
    job = journal.get(job_id)
    assert state == JobState.FAILED and job.last_error.startswith("gave up after 2 attempts")
    assert journal.client.get(f"{journal.prefix}:pr:{KEY}:lock") is None


def test_retry_later_and_release_refund_the_attempt(journal):
    job_id = enqueue(journal).job_id
    journal.claim(job_id, "w")
    state, wait = journal.fail(
        job_id, "rate limit", token="w", retry=True, delay=30, count_attempt=False
    )
    job = journal.get(job_id)
    assert (state, wait, job.attempts, job.deferrals) == (JobState.QUEUED, 30, 0, 1)
    journal.claim(job_id, "w")
    assert journal.release(job_id, token="w") == JobState.QUEUED
    assert journal.get(job_id).attempts == 0
    assert journal.fail(job_id, "x", token="w", retry=False) is None  # released: not ours


def test_permanent_failure_and_a_failure_while_superseded(journal):
    job_id = enqueue(journal).job_id
    journal.claim(job_id, "w")
    enqueue(journal, delivery_id="d2")
    assert journal.fail(job_id, "boom", token="w", retry=True)[0] == JobState.SUPERSEDED
    other = enqueue(journal, key="octo/demo#2").job_id
    journal.claim(other, "w")
    assert journal.fail(other, "gone", token="w", retry=False)[0] == JobState.FAILED


def test_the_ledger_adds_up_across_runs(journal):
    assert journal.spent(KEY).runs == 0
    for _ in range(2):
        journal.add_spend(
            KEY, model="gpt-4o-mini", prompt_tokens=100, completion_tokens=20, cost_usd=0.0005
        )
    spent = journal.spent(KEY)
    assert (spent.prompt_tokens, spent.completion_tokens, spent.runs) == (200, 40, 2)
    assert spent.tokens == 240 and spent.cost_usd == pytest.approx(0.001)
    assert journal.spent("octo/demo#2").tokens == 0


def test_a_forgotten_installation_is_forgotten_in_every_worker(
    redis_url, ns, github_settings, monkeypatch, caplog
):
    web, worker = (RedisJournal.from_url(redis_url, prefix=ns) for _ in range(2))
    clients = RedisInstallationClients(make_app_github(github_settings), worker)
    first, other = clients.client(1), clients.client(2)
    assert clients.client(1) is first and other is not first  # cached: one token each
    web.forget_installation(1)  # the web process got `installation` deleted/suspend
    again = clients.client(1)
    assert again is not first and clients.client(1) is again
    assert clients.client(2) is other
    web.forget_installation(1)  # suspended again, later: a new mark, forgotten again
    assert clients.client(1) is not again
    assert 0 < web.client.ttl(f"{ns}:installation:1:forgotten") <= 24 * 3600

    def down(installation_id):
        raise RedisError("connection refused")

    latest = clients.client(1)
    monkeypatch.setattr(worker, "forgotten_mark", down)
    assert clients.client(1) is latest  # Redis trouble: the cached client, and a warning
    assert "could not check whether installation 1 was forgotten" in caplog.text
    monkeypatch.undo()
    clients.forget(2)  # forgetting in a worker reaches the others too
    assert web.forgotten_mark(2) is not None and 2 not in clients
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
    journal = RedisJournal.from_url(url)
    cache = RedisCache(journal.client)
    assert cache.get("k") is None
    cache.put("k", DocParts(summary="Something."))
    assert not journal.writable()
    assert "docstring cache unavailable" in caplog.text
    journal.close()


# ------------------------------------------------------------------ the job runner


def run(runner: JobRunner, job_id: int) -> Retry | None:
    """Run one job as arq would; the Retry arq would get, or None."""
    try:
        asyncio.run(runner.run(job_id, "arq-id"))
    except Retry as exc:
        return exc
    return None


def test_the_runner_records_success_and_hands_the_handler_a_context(journal):
    job_id = enqueue(journal).job_id
    seen = {}

    async def handler(job, ctx):
        seen.update(attempts=job.attempts, delivery=ctx.delivery_id, superseded=ctx.is_superseded())
        ctx.save_data(check_run_id=5)
        ctx.heartbeat()
        assert ctx.data == {"check_run_id": 5} and ctx.superseded_data() == []

    assert run(JobRunner(journal, handler), job_id) is None
    assert seen == {"attempts": 1, "delivery": "d1", "superseded": False}
    job = journal.get(job_id)
    assert job.state == JobState.DONE and job.data == {"check_run_id": 5}


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
    journal, error, state, retry_in, attempts
):
    job_id = enqueue(journal).job_id

    async def handler(job, ctx):
        raise error()

    retry = run(JobRunner(journal, handler), job_id)
    job = journal.get(job_id)
    assert (job.state, job.attempts) == (state, attempts)
    if retry_in is None:
        assert retry is None
    else:
        assert retry is not None and retry.defer_score == pytest.approx(retry_in * 1000, abs=1500)


def test_the_runner_times_out_a_job_and_retries_it(journal):
    job_id = enqueue(journal).job_id

    async def handler(job, ctx):
        await asyncio.sleep(10)

    assert run(JobRunner(journal, handler, job_timeout=0.1), job_id) is not None
    job = journal.get(job_id)
    assert job.state == JobState.QUEUED and "timed out after 0.1 s" in job.last_error


def test_the_runner_defers_a_job_whose_pr_is_busy(journal):
    first, second = enqueue(journal).job_id, enqueue(journal, key=KEY, delivery_id="d2").job_id
    journal.client.set(f"{journal.prefix}:pr:{KEY}:lock", "someone-else", px=5000)
    called = []

    async def handler(job, ctx):
        called.append(job.id)

    retry = run(JobRunner(journal, handler), second)
    assert retry is not None and retry.defer_score == BUSY_POLL * 1000 and not called
    assert journal.get(second).attempts == 0 and journal.get(first).state == JobState.SUPERSEDED


def test_the_runner_stops_a_handler_whose_lease_was_taken(journal):
    journal.lease = 0.3
    job_id = enqueue(journal).job_id
    cancelled = []

    async def handler(job, ctx):
        journal.client.set(f"{journal.prefix}:pr:{KEY}:lock", "thief", px=5000)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    started = time.monotonic()
    retry = run(JobRunner(journal, handler), job_id)
    assert cancelled and time.monotonic() - started < 2
    assert retry is not None  # left in arq's queue for whoever owns it now
    assert journal.get(job_id).state == JobState.RUNNING  # untouched: not ours to record


def test_a_handler_that_lost_its_job_stops_quietly(journal):
    job_id = enqueue(journal).job_id

    async def handler(job, ctx):
        journal.client.delete(f"{journal.prefix}:pr:{KEY}:lock")
        journal.client.set(f"{journal.prefix}:pr:{KEY}:lock", "thief")
        with pytest.raises(JobLost):
            ctx.heartbeat()
        ctx.save_data(check_run_id=1)

    assert run(JobRunner(journal, handler), job_id) is not None
    assert journal.get(job_id).data == {}
