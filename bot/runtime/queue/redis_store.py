"""Scale-out jobs: the store's guarantees on Redis, run by arq workers (``REDIS_URL``).

``docgen serve`` records deliveries and enqueues jobs here (:class:`RedisStore`
implements :class:`bot.runtime.queue.store.Store`, like the SQLite store); ``docgen worker``
processes, on any machine, run them with arq (:mod:`bot.runtime.queue.arq_worker`) through the
same runner and handler as the embedded workers (:mod:`bot.runtime.queue.runner`).

arq only moves job ids: ``arq:job:{prefix}:{id}`` holds ``docgen.job(id)``.  The job
itself — payload, state, attempts, ``data`` — is a hash of ours, so that:

* **Delivery dedupe** outlives arq's results: ``SET NX`` on the delivery id, kept a week.
  Inside :meth:`RedisStore.atomic` the key is first a one-minute claim, made final
  by the same script that writes the job, so a web process killed between the two
  writes does not make GitHub's redelivery look like a duplicate.  That web side
  (deliveries, enqueueing, arq's job body) is :mod:`bot.runtime.queue.redis_intake`;
  the token ledger :mod:`bot.runtime.queue.redis_ledger`.
* **Coalescing**: ``pr:{key}:latest`` names the newest job of a PR.  Enqueueing marks a
  queued predecessor ``superseded`` and takes it out of arq's queue, so a PR has one
  queue entry however many pushes arrive while no worker runs (a predecessor arq has
  just started ends as a no-op).  A running one is flagged instead, and its handler
  sees :meth:`~bot.runtime.queue.runner.JobContext.is_superseded`.  The newest job's run concludes the check
  runs its superseded predecessors had opened (:meth:`RedisStore.superseded_data`).
* **One run per PR**: ``pr:{key}:lock`` holds the run's token with a lease
  (``DOCGEN_JOB_LEASE``) that the runner renews every third of it, together with
  arq's in-progress key.  A job whose PR is busy is deferred (arq ``Retry``).
* **Crashes**: a killed worker stops renewing; both keys expire after one lease and arq
  hands the job, still in its queue, to another worker, which finds ``data`` (the check
  run it opened) in the hash and finishes that check run (invariant 6).  arq alone would
  wait for the job timeout + 10 s (DESIGN.md, pitfalls).
* **Retries** are ours (:mod:`bot.runtime.queue.policy`, ``max_attempts``, deferrals for
  :class:`~bot.runtime.queue.store.RetryLater`), carried out by arq ``Retry(defer=…)``; arq's own
  ``max_tries`` is set out of the way because a PR-busy deferral is not an attempt.

The web side takes two round trips per delivery (``SET NX`` for the delivery, one Lua
script for the job); on the worker side every read-modify-write is a ``WATCH``/``MULTI``
transaction that checks the lease token, as the SQLite store checks ``worker_id``.
Keys assume one Redis (not a cluster: the scripts build key names).  Use a Redis with
persistence (AOF): a restart without it loses the queue.
https://redis.io/docs/latest/develop/interact/transactions/ and
https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import redis
from arq.constants import in_progress_key_prefix
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError

from bot.runtime.queue import redis_scripts
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
from bot.runtime.queue.redis_intake import RedisIntake
from bot.runtime.queue.redis_ledger import RedisLedger
from bot.runtime.queue.store import JOB_RETENTION, Claim, Job, Lease, dumps

log = logging.getLogger(__name__)

FORGOTTEN_KEPT = 10_000  # newest forget entries kept (a worker further behind re-reads none)
ARQ_MAX_TRIES = 1_000_000  # ours count attempts; arq's would count PR-busy deferrals too
BUSY_POLL = 1.0  # s between tries of a job whose PR is busy with another run
MAX_CHAIN = 1000  # superseded predecessors looked at (in Redis, by SUPERSEDED_DATA)
DRAIN_TIMEOUT = 25  # s a stopping worker lets running jobs finish before handing them back

T = TypeVar("T")


def _job(fields: Mapping[str, str]) -> Job:
    def number(name: str) -> float | None:
        value = fields.get(name)
        return float(value) if value else None

    created = float(fields.get("created") or 0)
    superseded_by = fields.get("superseded_by")
    return Job(
        id=int(fields["id"]),
        key=fields["key"],
        kind=fields["kind"],
        payload=json.loads(fields["payload"]),
        state=JobState(fields["state"]),
        attempts=int(fields.get("attempts") or 0),
        deferrals=int(fields.get("deferrals") or 0),
        last_error=fields.get("last_error") or None,
        run_after=number("run_after") or created,
        created=created,
        updated=number("updated") or created,
        data=json.loads(fields.get("data") or "{}"),
        delivery_id=fields.get("delivery_id") or None,
        worker_id=fields.get("worker") or None,
        heartbeat=number("heartbeat"),
        superseded_by=int(superseded_by) if superseded_by else None,
    )


class RedisStore(RedisIntake, RedisLedger):
    """Deliveries, jobs and the token ledger in Redis; the web app's and the handler's store.

    Synchronous, like :class:`bot.runtime.queue.sqlite_store.SqliteStore`: each call is one round trip or a few
    (well under a millisecond on a local network), made straight from the event loop.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "docgen",
        lease: float = 30.0,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self.rules = Rules(max_attempts, backoff_base, backoff_cap)
        self.clock = clock
        self._rng = rng
        self._local = threading.local()
        self._enqueue_script = client.register_script(redis_scripts.ENQUEUE)
        self._superseded_script = client.register_script(redis_scripts.SUPERSEDED_DATA)

    # What the runner and the web app catch from this store (a connection, a timeout).
    errors: tuple[type[BaseException], ...] = (RedisError,)

    @property
    def max_attempts(self) -> int:
        """Attempts a job gets (a handler may say "last attempt" in what it reports)."""
        return self.rules.max_attempts

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        return cls(client, **options)

    # ------------------------------------------------------------------ keys

    def arq_job_id(self, job_id: int) -> str:
        return f"{self.prefix}:{job_id}"

    def _job_key(self, job_id: int | str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def _lease_ms(self) -> int:
        return int(self.lease * 1000)

    def _transaction(self, fn: Callable[[Pipeline], T]) -> T:
        """Run ``fn`` (WATCH, read, MULTI, write, EXEC) until no watched key changed under it."""
        with self.client.pipeline() as pipe:
            while True:
                try:
                    return fn(pipe)
                except WatchError:
                    pipe.reset()

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ forgotten installations

    def forget_installation(self, installation_id: int) -> None:
        """Record that an installation was deleted or suspended (its tokens are void).

        An entry in a capped stream: every worker reads the entries after its own
        cursor (:meth:`forgotten_after`) before its next job and drops the clients.
        """
        self.client.xadd(
            self._forgotten_key,
            {"installation_id": int(installation_id)},
            maxlen=FORGOTTEN_KEPT,
            approximate=True,
        )

    def forgotten_after(self, cursor: str) -> tuple[list[int], str]:
        """Installations forgotten since ``cursor`` (``"0"`` at first): ``(ids, new cursor)``."""
        answer = self.client.xread({self._forgotten_key: cursor or "0"})
        if not answer:
            return [], cursor
        entries = answer[0][1]
        return [int(fields["installation_id"]) for _, fields in entries], entries[-1][0]

    def last_forgotten(self) -> str:
        """The cursor to start from: what is forgotten before start-up needs no action."""
        newest = self.client.xrevrange(self._forgotten_key, count=1)
        return newest[0][0] if newest else "0"

    @property
    def _forgotten_key(self) -> str:
        return f"{self.prefix}:forgotten"

    def writable(self) -> bool:
        """A cheap real write, for ``/healthz``."""
        try:
            self.client.set(f"{self.prefix}:health", str(self.clock()), ex=60)
        except RedisError as exc:
            log.warning("redis not writable: %s", exc)
            return False
        return True

    def counts(self) -> dict[str, int]:
        """For the ``docgen_jobs`` gauge: jobs in arq's queue (due, deferred or running)."""
        return {JobState.QUEUED.value: int(self.client.zcard(self.queue_name))}

    # ------------------------------------------------------------------ jobs

    def get(self, job_id: int) -> Job | None:
        fields = self.client.hgetall(self._job_key(job_id))
        return _job(fields) if fields else None

    def is_superseded(self, job_id: int) -> bool:
        """True once a newer job for the same PR exists (or the job is gone)."""
        state, superseded_by = self.client.hmget(self._job_key(job_id), "state", "superseded_by")
        return state is None or state == JobState.SUPERSEDED or bool(superseded_by)

    def superseded_data(self, job_id: int) -> list[dict[str, Any]]:
        """The ``data`` of the jobs this one replaced that did not finish, oldest first.

        Walks the ``supersedes`` links back to the last job that ended (done or failed:
        it concluded its predecessors itself), in Redis (:data:`~bot.runtime.queue.redis_scripts.SUPERSEDED_DATA`, one
        round trip however many pushes were coalesced).  A predecessor still marked
        running is a dead run: the caller holds the PR's lock, so no live run can exist.
        """
        found = self._superseded_script(args=[self.prefix, job_id, MAX_CHAIN])
        return [json.loads(data) for data in reversed(found)]

    def claim(self, token: str, job_id: int | None = None, *, ref: str | None = None) -> Claim:
        """Take the PR's lock for job ``job_id`` under ``token`` and count an attempt.

        ``ref``: arq's id of this run, whose in-progress key then lives as long as the
        lease.  ``job_id`` None claims nothing: arq hands out the jobs here.
        """
        if job_id is None:
            return Claim(reason="arq dispatches Redis jobs: claim one by its id")

        def take(pipe: Pipeline) -> Claim:
            job_key = self._job_key(job_id)
            pipe.watch(job_key)
            fields = pipe.hgetall(job_key)
            if not fields:
                return Claim(reason="not in Redis (expired?)")
            job = _job(fields)
            if job.state in (JobState.DONE, JobState.FAILED, JobState.SUPERSEDED):
                return Claim(reason=f"already {job.state}")
            lock_key = self._pr_key(job.key, "lock")
            pipe.watch(lock_key)
            holder = pipe.get(lock_key)
            if holder is not None:
                return Claim(retry_in=BUSY_POLL, reason=f"{job.key} is busy ({holder})")
            after = self._before_run(job)
            if after is not None and after.state != JobState.QUEUED:
                return self._settle_unrun(pipe, job, after)
            return self._start(pipe, job, Lease(job, token, ref), after)

        return self._transaction(take)

    def _settle_unrun(self, pipe: Pipeline, job: Job, after: Next) -> Claim:
        """Write the end of a job that will not run (superseded, or out of attempts)."""
        job_key = self._job_key(job.id)
        pipe.multi()
        pipe.hset(job_key, mapping={"updated": self.clock(), "state": after.state, "worker": ""})
        if after.error is not None:
            pipe.hset(job_key, "last_error", after.error)
        pipe.execute()
        return Claim(reason=f"now {after.state}: {after.error or 'a newer job exists'}")

    def _start(self, pipe: Pipeline, job: Job, lease: Lease, lost: Next | None) -> Claim:
        """Take the PR's lock and mark the run started (``lost``: its last run died)."""
        now, job_key = self.clock(), self._job_key(job.id)
        update: dict[str, Any] = {"updated": now, "run_after": now, "heartbeat": now}
        if lost is not None:
            update["last_error"] = lost.error
        pipe.multi()
        pipe.set(self._pr_key(job.key, "lock"), lease.token, px=self._lease_ms)
        pipe.hset(job_key, mapping={**update, "state": JobState.RUNNING, "worker": lease.token})
        pipe.hincrby(job_key, "attempts", 1)
        pipe.expire(job_key, int(JOB_RETENTION))
        if lease.ref is not None:  # arq set it to job timeout + 10 s: our lease instead
            pipe.pexpire(in_progress_key_prefix + lease.ref, self._lease_ms)
        pipe.execute()
        if lost is not None:
            log.warning(
                "job %d was interrupted (%s); running it again",
                job.id,
                lost.error,
                extra=job.log_extra(),
            )
        running = replace(
            job,
            state=JobState.RUNNING,
            attempts=job.attempts + 1,
            worker_id=lease.token,
            heartbeat=now,
            updated=now,
        )
        return Claim(replace(lease, job=running))

    def _before_run(self, job: Job) -> Next | None:
        """None for a queued job (run it); for a superseded one, or one left running by
        a worker that died (its lease ran out), the policy's next state."""
        superseded = job.superseded_by is not None
        if job.state == JobState.RUNNING:
            progress = Progress(job.attempts, job.deferrals, superseded)
            return decide(
                Outcome.lost(job.worker_id, job.attempts), progress, self.rules, self._rng
            )
        if superseded:
            return Next(JobState.SUPERSEDED, job.attempts, job.deferrals, None)
        return None

    def renew(self, lease: Lease) -> bool:
        """Extend the run's lease (and arq's in-progress key); False when it is lost."""
        lock_key = self._pr_key(lease.job.key, "lock")

        def extend(pipe: Pipeline) -> bool:
            pipe.watch(lock_key)
            if pipe.get(lock_key) != lease.token:
                return False
            pipe.multi()
            pipe.pexpire(lock_key, self._lease_ms)
            if lease.ref is not None:
                pipe.pexpire(in_progress_key_prefix + lease.ref, self._lease_ms)
            pipe.hset(self._job_key(lease.job.id), "heartbeat", self.clock())
            pipe.execute()
            return True

        return self._transaction(extend)

    def _owned(self, pipe: Pipeline, job_id: int, token: str) -> Job | None:
        """WATCH the job and its PR's lock; the job when ``token`` holds the lock."""
        pipe.watch(self._job_key(job_id))
        fields = pipe.hgetall(self._job_key(job_id))
        if not fields:
            return None
        job = _job(fields)
        lock_key = self._pr_key(job.key, "lock")
        pipe.watch(lock_key)
        if pipe.get(lock_key) != token or job.worker_id != token:
            return None
        return job

    def save_data(self, lease: Lease, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge ``data`` into the job's data; None when ``lease`` no longer holds the run."""
        job_id = lease.job.id

        def merge(pipe: Pipeline) -> dict[str, Any] | None:
            job = self._owned(pipe, job_id, lease.token)
            if job is None:
                return None
            merged = {**job.data, **data}
            pipe.multi()
            pipe.hset(
                self._job_key(job_id), mapping={"data": dumps(merged), "updated": self.clock()}
            )
            pipe.execute()
            return merged

        return self._transaction(merge)

    def complete(self, lease: Lease) -> Next | None:
        """The run finished (``done``); None when ``lease`` no longer held it."""
        return self._end(lease, Outcome.done())

    def fail(self, lease: Lease, outcome: Outcome) -> Next | None:
        """The run failed: write the policy's next state (:func:`bot.runtime.queue.policy.decide`),
        release the PR's lock; None when ``lease`` no longer held the run."""
        return self._end(lease, outcome)

    def release(self, lease: Lease, reason: str = "worker stopped") -> Next | None:
        """Give the run back untouched (shutdown): queued now, attempt refunded."""
        return self._end(lease, Outcome.released(reason))

    def _end(self, lease: Lease, outcome: Outcome) -> Next | None:
        """End the run: write the policy's next state, release the PR's lock."""
        job_id = lease.job.id

        def write(pipe: Pipeline) -> Next | None:
            job = self._owned(pipe, job_id, lease.token)
            if job is None:
                return None
            progress = Progress(job.attempts, job.deferrals, job.superseded_by is not None)
            after = decide(outcome, progress, self.rules, self._rng)
            now = self.clock()
            fields: dict[str, Any] = {
                "state": after.state,
                "attempts": after.attempts,
                "deferrals": after.deferrals,
                "run_after": now + after.wait,
                "worker": "",
                "updated": now,
            }
            if after.error is not None:
                fields["last_error"] = after.error
            pipe.multi()
            pipe.hset(self._job_key(job_id), mapping=fields)
            pipe.hdel(self._job_key(job_id), "heartbeat")
            pipe.expire(self._job_key(job_id), int(JOB_RETENTION))
            pipe.delete(self._pr_key(job.key, "lock"))
            pipe.execute()
            return after

        return self._transaction(write)
