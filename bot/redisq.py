"""Scale-out jobs: the journal's guarantees on Redis, run by arq workers (``REDIS_URL``).

``docgen serve`` records deliveries and enqueues jobs here (:class:`RedisJournal` has
the methods the web app calls on :class:`bot.jobs.Journal`); ``docgen worker``
processes, on any machine, run them with arq (:func:`make_worker`) through the same
handler as the embedded workers (:func:`bot.review_job.make_handler`).

arq only moves job ids: ``arq:job:{prefix}:{id}`` holds ``docgen.job(id)``.  The job
itself — payload, state, attempts, ``data`` — is a hash of ours, so that:

* **Delivery dedupe** outlives arq's results: ``SET NX`` on the delivery id, kept a week.
  Inside :meth:`RedisJournal.atomic` the key is first a one-minute claim, made final
  by the same script that writes the job, so a web process killed between the two
  writes does not make GitHub's redelivery look like a duplicate.
* **Coalescing**: ``pr:{key}:latest`` names the newest job of a PR.  Enqueueing marks a
  queued predecessor ``superseded`` and takes it out of arq's queue, so a PR has one
  queue entry however many pushes arrive while no worker runs (a predecessor arq has
  just started ends as a no-op).  A running one is flagged instead, and its handler
  sees :meth:`RedisJobContext.is_superseded`.  The newest job's run concludes the check
  runs its superseded predecessors had opened (:meth:`RedisJournal.superseded_data`).
* **One run per PR**: ``pr:{key}:lock`` holds the run's token with a lease
  (``DOCGEN_JOB_LEASE``) that :class:`JobRunner` renews every third of it, together with
  arq's in-progress key.  A job whose PR is busy is deferred (arq ``Retry``).
* **Crashes**: a killed worker stops renewing; both keys expire after one lease and arq
  hands the job, still in its queue, to another worker, which finds ``data`` (the check
  run it opened) in the hash and finishes that check run (invariant 6).  arq alone would
  wait for the job timeout + 10 s (DESIGN.md, pitfalls).
* **Retries** are ours (:func:`bot.jobs.backoff_delay`, ``max_attempts``, deferrals for
  :class:`~bot.jobs.RetryLater`), carried out by arq ``Retry(defer=…)``; arq's own
  ``max_tries`` is set out of the way because a PR-busy deferral is not an attempt.

The web side takes two round trips per delivery (``SET NX`` for the delivery, one Lua
script for the job); on the worker side every read-modify-write is a ``WATCH``/``MULTI``
transaction that checks the lease token, as the SQLite journal checks ``worker_id``.
Keys assume one Redis (not a cluster: the scripts build key names).  Use a Redis with
persistence (AOF): a restart without it loses the queue.
https://redis.io/docs/latest/develop/interact/transactions/ and
https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import redis
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.worker import Retry, Worker, func
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError

from bot import logs, quota
from bot.github.client import InstallationClients
from bot.jobs import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    DELIVERY_RETENTION,
    JOB_RETENTION,
    MAX_ATTEMPTS,
    MAX_DEFERRALS,
    MAX_ERROR_CHARS,
    MAX_RETRY_LATER,
    EnqueueResult,
    Handler,
    Job,
    JobContext,
    JobLost,
    JobState,
    PermanentJobError,
    RetryLater,
    Spend,
    backoff_delay,
)
from bot.usage import UsageRow, sort_rows

log = logging.getLogger(__name__)

JOB_FUNCTION = "docgen.job"
DELIVERY_CLAIM = 60  # s: a delivery recorded but not yet committed with its job
LEDGER_RETENTION = 90 * 24 * 3600  # a PR's spend, kept this long after its last run
USAGE_RETENTION = 400 * 24 * 3600  # a month's totals per installation and repository
FORGOTTEN_RETENTION = 24 * 3600  # s an installation's forget mark is kept
ARQ_JOB_EXPIRY = 2 * 24 * 3600  # arq drops a job not finished by then (deferrals included)
ARQ_MAX_TRIES = 1_000_000  # ours count attempts; arq's would count PR-busy deferrals too
BUSY_POLL = 1.0  # s between tries of a job whose PR is busy with another run
MAX_CHAIN = 1000  # superseded predecessors looked at (in Redis, by _SUPERSEDED_DATA)
SUPERSEDED_TOMBSTONE_MS = 1000  # blocks an arq start racing with the removal of a job
_ID_MARKER = "@docgen-job-id@"  # in the arq job body _ENQUEUE completes with the new id
DRAIN_TIMEOUT = 25  # s a stopping worker lets running jobs finish before handing them back

T = TypeVar("T")

# enqueue in one round trip: the job's id, the coalescing, our hash and arq's entry, and
# the block's pending deliveries made final — all or nothing, as Lua scripts run
# atomically.  A queued predecessor is marked superseded and, unless an arq worker has
# already started it (its in-progress key: the run will be a no-op), taken out of arq's
# queue with its arq keys; a tombstone in-progress key makes an arq worker that read
# the queue just before abort its start (arq WATCHes that key).  A running predecessor
# is only flagged: it sees is_superseded() and the new job waits for the PR's lock.
# Job keys are built here from the prefix: one Redis, not a cluster (see above).
# KEYS: seq, the PR's latest, arq's queue.  ARGV: prefix, arq's job/retry/in-progress
# key prefixes, PR key, kind, payload, delivery id, now (s), now (ms), arq job body,
# id marker, job retention (s), arq job expiry (ms), delivery retention (s), tombstone
# (ms), then the pending (delivery key, value) pairs.
_ENQUEUE = """
local prefix = ARGV[1]
local job_id = redis.call('INCR', KEYS[1])
local prev = redis.call('GET', KEYS[2])
local prev_state = false
if prev then
  local prev_key = prefix .. ':job:' .. prev
  prev_state = redis.call('HGET', prev_key, 'state')
  if prev_state == 'queued' then
    redis.call('HSET', prev_key, 'state', 'superseded', 'superseded_by', job_id,
               'updated', ARGV[9])
    local arq_prev = prefix .. ':' .. prev
    if redis.call('EXISTS', ARGV[4] .. arq_prev) == 0 then
      redis.call('ZREM', KEYS[3], arq_prev)
      redis.call('DEL', ARGV[2] .. arq_prev, ARGV[3] .. arq_prev)
      redis.call('SET', ARGV[4] .. arq_prev, 'superseded', 'PX', ARGV[16])
    end
  elseif prev_state == 'running' then
    redis.call('HSET', prev_key, 'superseded_by', job_id)
  end
end
redis.call('SET', KEYS[2], job_id, 'EX', ARGV[13])
local job_key = prefix .. ':job:' .. job_id
redis.call('HSET', job_key, 'id', job_id, 'key', ARGV[5], 'kind', ARGV[6],
           'payload', ARGV[7], 'state', 'queued', 'attempts', 0, 'deferrals', 0,
           'data', '{}', 'delivery_id', ARGV[8], 'supersedes', prev or '',
           'run_after', ARGV[9], 'created', ARGV[9], 'updated', ARGV[9])
redis.call('EXPIRE', job_key, ARGV[13])
local arq_id = prefix .. ':' .. job_id
local body, marker = ARGV[11], ARGV[12]
local at = string.find(body, marker, 1, true)
body = string.sub(body, 1, at - 1) .. job_id .. string.sub(body, at + #marker)
redis.call('SET', ARGV[2] .. arq_id, body, 'PX', ARGV[14])
redis.call('ZADD', KEYS[3], ARGV[10], arq_id)
for i = 17, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ARGV[15])
end
return {job_id, prev or '', prev_state or ''}
"""

# superseded_data: the data of the unfinished jobs down the ``supersedes`` chain,
# newest first.  ARGV: prefix, job id, the most links to follow.
_SUPERSEDED_DATA = """
local prefix = ARGV[1]
local out = {}
local current = redis.call('HGET', prefix .. ':job:' .. ARGV[2], 'supersedes')
for _ = 1, tonumber(ARGV[3]) do
  if not current or current == '' then break end
  local f = redis.call('HMGET', prefix .. ':job:' .. current, 'state', 'data', 'supersedes')
  local state = f[1]
  if not state or state == 'done' or state == 'failed' then break end
  if (state == 'superseded' or state == 'running') and f[2] and f[2] ~= '{}' then
    table.insert(out, f[2])
  end
  current = f[3]
end
return out
"""


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))


def _arq_dumps(value: Any) -> bytes:
    # JSON, not arq's default pickle: reading a job must never run code from Redis.
    return json.dumps(value, separators=(",", ":")).encode()


def _arq_loads(raw: bytes) -> Any:
    return json.loads(raw)


@dataclass(frozen=True)
class BatchItem:
    """One delivery for :meth:`RedisJournal.record_batch`; ``job``: (key, kind, payload)."""

    delivery_id: str
    event: str
    action: str | None
    outcome: str
    job: tuple[str, str, Mapping[str, Any]] | None


Recorded = tuple[bool, EnqueueResult | None]


def _cut(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


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


@dataclass(frozen=True)
class Claim:
    """What :meth:`RedisJournal.claim` decided: run ``job``, retry in ``retry_in`` s, or skip."""

    job: Job | None = None
    retry_in: float | None = None
    reason: str = ""


class RedisJournal:
    """Deliveries, jobs and the token ledger in Redis; the web app's and the handler's journal.

    Synchronous, like :class:`bot.jobs.Journal`: each call is one round trip or a few
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
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self._rng = rng
        self._local = threading.local()
        self._enqueue_script = client.register_script(_ENQUEUE)
        self._superseded_script = client.register_script(_SUPERSEDED_DATA)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisJournal:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        return cls(client, **options)

    # ------------------------------------------------------------------ keys

    @property
    def queue_name(self) -> str:
        """arq's queue (a sorted set of arq job ids by due time)."""
        return f"{self.prefix}:queue"

    def arq_job_id(self, job_id: int) -> str:
        return f"{self.prefix}:{job_id}"

    def _job_key(self, job_id: int | str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _pr_key(self, key: str, what: str) -> str:
        return f"{self.prefix}:pr:{key}:{what}"

    def _delivery_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivery:{delivery_id}"

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

    # ------------------------------------------------------------------ web side

    @contextlib.contextmanager
    def atomic(self, *, wait: bool = True) -> Iterator[RedisJournal]:
        """Deliveries recorded in the block become final with the block's job, or are undone.

        Same use as :meth:`bot.jobs.Journal.atomic`; nested blocks join the outer one.
        ``wait`` is accepted for that interface: there is no write lock to wait for.
        """
        local = self._local
        if getattr(local, "pending", None) is not None:
            yield self
            return
        local.pending = []
        try:
            yield self
        except BaseException:
            pending, local.pending = local.pending, None
            if pending:
                with contextlib.suppress(RedisError):  # the claims expire anyway
                    self.client.delete(*(key for key, _ in pending))
            raise
        pending, local.pending = local.pending, None
        if pending:  # recorded without a job (ignored events): keep them a week too
            with self.client.pipeline(transaction=True) as pipe:
                for key, value in pending:
                    pipe.set(key, value, ex=int(DELIVERY_RETENTION))
                pipe.execute()

    def record_delivery(
        self, delivery_id: str, event: str, action: str | None, *, outcome: str
    ) -> bool:
        """Remember a webhook delivery; False when this delivery id was seen before."""
        key = self._delivery_key(delivery_id)
        value = _dumps(
            {"event": event, "action": action, "outcome": outcome, "received": self.clock()}
        )
        pending: list[tuple[str, str]] | None = getattr(self._local, "pending", None)
        ttl = DELIVERY_CLAIM if pending is not None else DELIVERY_RETENTION
        if not self.client.set(key, value, nx=True, ex=int(ttl)):
            return False
        if pending is not None:
            pending.append((key, value))
        return True

    def delivery_seen(self, delivery_id: str) -> bool:
        return bool(self.client.exists(self._delivery_key(delivery_id)))

    def enqueue(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
    ) -> EnqueueResult:
        """Queue a job for ``key`` in ours and arq's structures, superseding older ones.

        One round trip: :data:`_ENQUEUE` runs the whole read-modify-write in Redis,
        including the final write of the block's pending deliveries.
        """
        pending: list[tuple[str, str]] = getattr(self._local, "pending", None) or []
        keys, args = self._enqueue_call(key, kind, payload, delivery_id, pending)
        answer = self._enqueue_script(keys=keys, args=args)
        pending.clear()
        return self._enqueued(answer, key, delivery_id)

    def _enqueue_call(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        delivery_id: str | None,
        pending: Sequence[tuple[str, str]],
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of :data:`_ENQUEUE` (``pending``: deliveries it makes final)."""
        now = self.clock()
        body = serialize_job(
            JOB_FUNCTION, (_ID_MARKER,), {}, None, int(now * 1000), serializer=_arq_dumps
        )
        keys = [f"{self.prefix}:seq", self._pr_key(key, "latest"), self.queue_name]
        args = [
            self.prefix,
            job_key_prefix,
            retry_key_prefix,
            in_progress_key_prefix,
            key,
            kind,
            _dumps(payload),
            delivery_id or "",
            repr(now),
            int(now * 1000),
            body,
            json.dumps(_ID_MARKER),
            int(JOB_RETENTION),
            ARQ_JOB_EXPIRY * 1000,
            int(DELIVERY_RETENTION),
            SUPERSEDED_TOMBSTONE_MS,
            *(part for pair in pending for part in pair),
        ]
        return keys, args

    @staticmethod
    def _enqueued(answer: Sequence[Any], key: str, delivery_id: str | None) -> EnqueueResult:
        job_id, prev, prev_state = answer
        job_id = int(job_id)
        result = EnqueueResult(
            job_id,
            coalesced=prev_state == JobState.QUEUED,
            behind=int(prev) if prev_state == JobState.RUNNING else None,
        )
        if result.coalesced or result.behind:
            # DEBUG: the web handler's one line per delivery already says it.
            log.debug(
                "job %d supersedes %s job %s",
                job_id,
                prev_state,
                prev,
                extra={"delivery_id": delivery_id, "job_key": key, "job_id": job_id},
            )
        return result

    def record_batch(self, batch: Sequence[BatchItem]) -> list[Recorded | Exception]:
        """Record many deliveries and enqueue their jobs in two round trips in all.

        The web handler's group commit (``bot.app.Recorder``): one pipeline claims every
        delivery id (``SET NX``, :data:`DELIVERY_CLAIM` s), one more runs
        :data:`_ENQUEUE` for each new delivery with a job — which makes its claim final
        in the same script, as :meth:`atomic` does — and makes the others' claims final.
        A delivery whose script fails gives back its claim and comes back as the
        exception; the others are unaffected.  Same results as :meth:`record_delivery` +
        :meth:`enqueue` one by one: ``(new?, the job or None)``.
        """
        now = self.clock()
        claims: list[tuple[str, str]] = []
        with self.client.pipeline(transaction=False) as pipe:
            for item in batch:
                key = self._delivery_key(item.delivery_id)
                value = _dumps(
                    {
                        "event": item.event,
                        "action": item.action,
                        "outcome": item.outcome,
                        "received": now,
                    }
                )
                claims.append((key, value))
                pipe.set(key, value, nx=True, ex=DELIVERY_CLAIM)
            taken = pipe.execute()
        out: list[Recorded | Exception] = [(False, None)] * len(batch)
        calls: list[int] = []
        with self.client.pipeline(transaction=False) as pipe:
            for i, (item, claim, new) in enumerate(zip(batch, claims, taken, strict=True)):
                if not new:
                    continue
                if item.job is None:  # nothing to queue: the claim becomes the record
                    pipe.set(claim[0], claim[1], ex=int(DELIVERY_RETENTION))
                else:
                    keys, args = self._enqueue_call(*item.job, item.delivery_id, [claim])
                    self._enqueue_script(keys=keys, args=args, client=pipe)
                calls.append(i)
            answers = pipe.execute(raise_on_error=False) if calls else []
        undo = []
        for i, answer in zip(calls, answers, strict=True):
            item = batch[i]
            if isinstance(answer, Exception):
                out[i] = answer
                undo.append(claims[i][0])
            elif item.job is None:
                out[i] = (True, None)
            else:
                out[i] = (True, self._enqueued(answer, item.job[0], item.delivery_id))
        if undo:
            with contextlib.suppress(RedisError):  # the claims expire anyway
                self.client.delete(*undo)
        return out

    def forget_installation(self, installation_id: int) -> None:
        """Tell every worker to drop the installation's cached client (deleted, suspended).

        A fresh random mark: a worker that saw another (or none) before forgets its
        client on the next use (:class:`RedisInstallationClients`).  Kept a day, much
        longer than an installation token lives (an hour).
        """
        self.client.set(
            self._forgotten_key(installation_id), uuid.uuid4().hex, ex=FORGOTTEN_RETENTION
        )

    def forgotten_mark(self, installation_id: int) -> str | None:
        """The installation's current forget mark (None: never forgotten, or long ago)."""
        return self.client.get(self._forgotten_key(installation_id))

    def _forgotten_key(self, installation_id: int) -> str:
        return f"{self.prefix}:installation:{int(installation_id)}:forgotten"

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

    # ------------------------------------------------------------------ ledger

    def _ledger_key(self, key: str) -> str:
        return f"{self.prefix}:ledger:{key}"

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
        """Add what one run of ``key`` (a PR) spent to the PR's totals, and to its
        installation's and repository's totals of the month (``docgen usage``)."""
        ledger = self._ledger_key(key)
        month = quota.Periods.at(self.clock()).month
        monthly = self._usage_key(month)
        inst = "" if installation_id is None else str(installation_id)
        field = f"{inst}|{repo or key.partition('#')[0]}"
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(ledger, "prompt_tokens", prompt_tokens)
            pipe.hincrby(ledger, "completion_tokens", completion_tokens)
            pipe.hincrbyfloat(ledger, "cost_usd", cost_usd)
            pipe.hincrby(ledger, "runs", 1)
            pipe.expire(ledger, LEDGER_RETENTION)
            pipe.hincrby(monthly, f"{field}|prompt_tokens", prompt_tokens)
            pipe.hincrby(monthly, f"{field}|completion_tokens", completion_tokens)
            pipe.hincrbyfloat(monthly, f"{field}|cost_usd", cost_usd)
            pipe.hincrby(monthly, f"{field}|runs", 1)
            pipe.expire(monthly, USAGE_RETENTION)
            pipe.zadd(self._usage_months_key, {month: quota.month_bounds(month)[0]})
            pipe.execute()

    def _usage_key(self, month: str) -> str:
        return f"{self.prefix}:usage:{month}"

    @property
    def _usage_months_key(self) -> str:
        return f"{self.prefix}:usage:months"

    def usage(self, month: str | None = None) -> list[UsageRow]:
        """The ledger summed per installation, repository and UTC month (or one month).

        One hash per month: fields ``installation|owner/repo|total``.
        """
        cutoff = self.clock() - USAGE_RETENTION
        self.client.zremrangebyscore(self._usage_months_key, "-inf", cutoff)
        months = [month] if month else self.client.zrange(self._usage_months_key, 0, -1)
        rows: list[UsageRow] = []
        for m in months:
            sums: dict[tuple[str, str], dict[str, str]] = {}
            for name, value in self.client.hgetall(self._usage_key(m)).items():
                inst, repo, total = name.rsplit("|", 2)
                sums.setdefault((inst, repo), {})[total] = value
            for (inst, repo), f in sums.items():
                rows.append(
                    UsageRow(
                        int(inst) if inst else None,
                        repo,
                        m,
                        int(f.get("prompt_tokens", 0)),
                        int(f.get("completion_tokens", 0)),
                        float(f.get("cost_usd", 0.0)),
                        int(f.get("runs", 0)),
                    )
                )
        return sort_rows(rows)

    # ------------------------------------------------------- installation caps

    def _cap_key(self, installation_id: int, period: str) -> str:
        return f"{self.prefix}:cap:{installation_id}:{period}"

    def reserve_tokens(
        self, installation_id: int, tokens: int, caps: quota.Caps
    ) -> quota.Hold | quota.CapHit:
        """Count ``tokens`` against the installation's day and month, unless over a cap.

        WATCH both counters, decide with :func:`bot.quota.check`, increment both in
        MULTI: a reservation made by another worker in between retries the decision.
        """
        now = self.clock()
        periods = quota.Periods.at(now)
        day = self._cap_key(installation_id, periods.day)
        month = self._cap_key(installation_id, periods.month)

        def take(pipe: Pipeline) -> quota.Hold | quota.CapHit:
            pipe.watch(day, month)
            used = quota.Used(int(pipe.get(day) or 0), int(pipe.get(month) or 0))
            hit = quota.check(used, tokens, caps, now)
            if hit is not None:
                pipe.unwatch()
                return hit
            pipe.multi()
            for key, window in ((day, "day"), (month, "month")):
                pipe.incrby(key, tokens)
                # Relative to our clock: the period's end, plus a day for late settles.
                ttl = quota.resets_at(window, now) - now + quota.GRACE  # type: ignore[arg-type]
                pipe.expire(key, int(ttl) + 1)
            pipe.execute()
            return quota.Hold(installation_id, periods, tokens)

        return self._transaction(take)

    def settle_tokens(self, hold: quota.Hold, actual: int) -> None:
        """Replace ``hold`` by ``actual`` tokens, in the periods the hold was counted in."""
        delta = max(0, actual) - hold.tokens
        if not delta:
            return
        with self.client.pipeline(transaction=True) as pipe:
            for period in (hold.periods.day, hold.periods.month):
                pipe.incrby(self._cap_key(hold.installation_id, period), delta)
            pipe.execute()

    def cap_used(self, installation_id: int) -> quota.Used:
        """Tokens counted against the installation's caps today and this month (UTC)."""
        periods = quota.Periods.at(self.clock())
        day, month = self.client.mget(
            self._cap_key(installation_id, periods.day),
            self._cap_key(installation_id, periods.month),
        )
        return quota.Used(max(0, int(day or 0)), max(0, int(month or 0)))

    def spent(self, key: str) -> Spend:
        """Everything runs of ``key`` (a PR) have spent so far."""
        row = self.client.hgetall(self._ledger_key(key))
        return Spend(
            int(row.get("prompt_tokens", 0)),
            int(row.get("completion_tokens", 0)),
            float(row.get("cost_usd", 0.0)),
            int(row.get("runs", 0)),
        )

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
        it concluded its predecessors itself), in Redis (:data:`_SUPERSEDED_DATA`, one
        round trip however many pushes were coalesced).  A predecessor still marked
        running is a dead run: the caller holds the PR's lock, so no live run can exist.
        """
        found = self._superseded_script(args=[self.prefix, job_id, MAX_CHAIN])
        return [json.loads(data) for data in reversed(found)]

    def claim(self, job_id: int, token: str, *, arq_job_id: str | None = None) -> Claim:
        """Take the PR's lock for job ``job_id`` under ``token`` and count an attempt."""

        def take(pipe: Pipeline) -> Claim:
            now = self.clock()
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
            update: dict[str, Any] = {"updated": now}
            lost = job.state == JobState.RUNNING  # its worker died: the lease ran out
            if lost:
                update["last_error"] = f"worker {job.worker_id} lost during attempt {job.attempts}"
            verdict = None
            if job.superseded_by is not None:
                verdict = JobState.SUPERSEDED
            elif lost and job.attempts >= self.max_attempts:
                verdict = JobState.FAILED
                update["last_error"] = (
                    f"gave up after {job.attempts} attempts: {update['last_error']}"
                )
            pipe.multi()
            if verdict is not None:
                pipe.hset(job_key, mapping={**update, "state": verdict, "worker": ""})
                pipe.execute()
                return Claim(
                    reason=f"now {verdict}: {update.get('last_error', 'a newer job exists')}"
                )
            update.update(state=JobState.RUNNING, worker=token, heartbeat=now, run_after=now)
            pipe.set(lock_key, token, px=self._lease_ms)
            pipe.hset(job_key, mapping=update)
            pipe.hincrby(job_key, "attempts", 1)
            pipe.expire(job_key, int(JOB_RETENTION))
            if arq_job_id is not None:  # arq set it to job timeout + 10 s: our lease instead
                pipe.pexpire(in_progress_key_prefix + arq_job_id, self._lease_ms)
            pipe.execute()
            if lost:
                log.warning(
                    "job %d was interrupted (%s); running it again",
                    job.id,
                    update["last_error"],
                    extra=job.log_extra(),
                )
            return Claim(
                replace(
                    job,
                    state=JobState.RUNNING,
                    attempts=job.attempts + 1,
                    worker_id=token,
                    heartbeat=now,
                    updated=now,
                )
            )

        return self._transaction(take)

    def renew(self, job_id: int, key: str, token: str, *, arq_job_id: str | None = None) -> bool:
        """Extend the run's lease (and arq's in-progress key); False when it is lost."""
        lock_key = self._pr_key(key, "lock")

        def extend(pipe: Pipeline) -> bool:
            pipe.watch(lock_key)
            if pipe.get(lock_key) != token:
                return False
            pipe.multi()
            pipe.pexpire(lock_key, self._lease_ms)
            if arq_job_id is not None:
                pipe.pexpire(in_progress_key_prefix + arq_job_id, self._lease_ms)
            pipe.hset(self._job_key(job_id), "heartbeat", self.clock())
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

    def save_data(
        self, job_id: int, data: Mapping[str, Any], *, worker_id: str
    ) -> dict[str, Any] | None:
        """Merge ``data`` into the job's data; None when ``worker_id`` (the lease token)
        no longer owns the job.  Same signature as :meth:`bot.jobs.Journal.save_data`."""

        def merge(pipe: Pipeline) -> dict[str, Any] | None:
            job = self._owned(pipe, job_id, worker_id)
            if job is None:
                return None
            merged = {**job.data, **data}
            pipe.multi()
            pipe.hset(
                self._job_key(job_id), mapping={"data": _dumps(merged), "updated": self.clock()}
            )
            pipe.execute()
            return merged

        return self._transaction(merge)

    def _settle(
        self, job_id: int, token: str, decide: Callable[[Job], tuple[JobState, dict[str, Any]]]
    ) -> JobState | None:
        """End the run: write ``decide(job)``'s state and fields, release the PR's lock."""

        def write(pipe: Pipeline) -> JobState | None:
            job = self._owned(pipe, job_id, token)
            if job is None:
                return None
            state, fields = decide(job)
            now = self.clock()
            pipe.multi()
            pipe.hset(
                self._job_key(job_id),
                mapping={"run_after": now, **fields, "state": state, "worker": "", "updated": now},
            )
            pipe.hdel(self._job_key(job_id), "heartbeat")
            pipe.expire(self._job_key(job_id), int(JOB_RETENTION))
            pipe.delete(self._pr_key(job.key, "lock"))
            pipe.execute()
            return state

        return self._transaction(write)

    def complete(self, job_id: int, *, token: str) -> bool:
        """The run finished; False when ``token`` no longer owned the job."""
        return self._settle(job_id, token, lambda job: (JobState.DONE, {})) is not None

    def fail(
        self,
        job_id: int,
        error: str,
        *,
        token: str,
        retry: bool,
        delay: float | None = None,
        count_attempt: bool = True,
    ) -> tuple[JobState, float] | None:
        """The run failed: queued again after a backoff (the new state and the wait), or failed.

        The rules of :meth:`bot.jobs.Journal.fail`; None when ``token`` lost the job.
        """
        wait = 0.0

        def decide(job: Job) -> tuple[JobState, dict[str, Any]]:
            nonlocal wait
            attempts, deferrals, reason = job.attempts, job.deferrals, _cut(error)
            if not count_attempt:
                attempts, deferrals = attempts - 1, deferrals + 1
            if job.superseded_by is not None:
                state = JobState.SUPERSEDED
            elif not retry:
                state = JobState.FAILED
            elif count_attempt and attempts >= self.max_attempts:
                state, reason = JobState.FAILED, _cut(f"gave up after {attempts} attempts: {error}")
            elif not count_attempt and deferrals > MAX_DEFERRALS:
                state = JobState.FAILED
                reason = _cut(f"gave up after {MAX_DEFERRALS} deferrals: {error}")
            else:
                state = JobState.QUEUED
                if delay is None:
                    wait = backoff_delay(
                        attempts, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng
                    )
                else:
                    wait = max(0.0, delay)
            fields = {
                "attempts": attempts,
                "deferrals": deferrals,
                "last_error": reason,
                "run_after": self.clock() + wait,
            }
            return state, fields

        state = self._settle(job_id, token, decide)
        return None if state is None else (state, wait)

    def release(
        self, job_id: int, *, token: str, reason: str = "worker stopped"
    ) -> JobState | None:
        """Give the run back untouched (shutdown): queued now, attempt refunded."""

        def decide(job: Job) -> tuple[JobState, dict[str, Any]]:
            state = JobState.QUEUED if job.superseded_by is None else JobState.SUPERSEDED
            return state, {"attempts": job.attempts - 1, "last_error": reason}

        return self._settle(job_id, token, decide)


class RedisInstallationClients(InstallationClients):
    """:class:`~bot.github.client.InstallationClients` whose :meth:`forget` reaches every worker.

    The web process receives the ``installation`` deleted/suspend event, but the
    installation tokens are cached in the workers: it records a forget mark in Redis
    (:meth:`RedisJournal.forget_installation`), and each worker compares the mark with
    the one it saw last before handing out a cached client (one ``GET`` per job).
    """

    def __init__(self, app: Any, journal: RedisJournal, **options: Any) -> None:
        super().__init__(app, **options)
        self.journal = journal
        self._marks: dict[int, str | None] = {}

    def client(self, installation_id: int) -> Any:
        try:
            mark = self.journal.forgotten_mark(installation_id)
        except RedisError as exc:  # the job itself will find out whether Redis is back
            log.warning(
                "could not check whether installation %s was forgotten: %s", installation_id, exc
            )
        else:
            if installation_id in self and self._marks.get(installation_id) != mark:
                log.info(
                    "installation %s was deleted or suspended: its token is dropped",
                    installation_id,
                )
                super().forget(installation_id)
            self._marks[installation_id] = mark
        return super().client(installation_id)

    def forget(self, installation_id: int) -> None:
        """Drop the installation's client in this process and every worker."""
        super().forget(installation_id)
        self.journal.forget_installation(installation_id)


class RedisJobContext(JobContext):
    """:class:`bot.jobs.JobContext` over :class:`RedisJournal`; the worker id is the
    lease token, and a heartbeat renews the lease (and arq's in-progress key)."""

    def __init__(
        self, journal: RedisJournal, job: Job, token: str, arq_job_id: str | None = None
    ) -> None:
        super().__init__(journal, job, token)  # type: ignore[arg-type]  # same interface
        self._arq_job_id = arq_job_id

    def heartbeat(self) -> None:
        alive = self._journal.renew(  # type: ignore[attr-defined]
            self.job.id, self.job.key, self.worker_id, arq_job_id=self._arq_job_id
        )
        if not alive:
            raise JobLost(f"job {self.job.id} is no longer ours")


class JobRunner:
    """The arq job function: claim, run the handler under a renewed lease, record the outcome.

    Outcomes as in :class:`bot.jobs.WorkerPool`: return → done; :class:`PermanentJobError`
    → failed; :class:`RetryLater` → deferred, no attempt spent; other exceptions and the
    job timeout → retried with backoff up to ``max_attempts``.  A lease lost to another
    worker stops the handler; a worker shutting down hands the job back.
    """

    def __init__(
        self,
        journal: RedisJournal,
        handler: Handler,
        *,
        job_timeout: float | None = 900.0,
        name: str | None = None,
    ) -> None:
        self.journal = journal
        self.handler = handler
        self.job_timeout = job_timeout
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    async def arq_job(self, ctx: dict[str, Any], job_id: int) -> None:
        """``docgen.job(job_id)`` as arq calls it."""
        await self.run(int(job_id), str(ctx["job_id"]))

    async def run(self, job_id: int, arq_job_id: str | None = None) -> None:
        token = f"{self.name}:{uuid.uuid4().hex[:12]}"
        claim = self.journal.claim(job_id, token, arq_job_id=arq_job_id)
        if claim.retry_in is not None:
            raise Retry(defer=claim.retry_in)
        if claim.job is None:
            log.info("job %d not run: %s", job_id, claim.reason, extra={"job_id": job_id})
            return
        job = claim.job
        extra = job.log_extra()
        ctx = RedisJobContext(self.journal, job, token, arq_job_id)
        deadline = asyncio.timeout(self.job_timeout)
        lost = asyncio.Event()
        owner = {"token": token}
        started = time.monotonic()

        async def work() -> None:
            async with deadline:
                await self.handler(job, ctx)

        with logs.bind(**extra):
            log.info("job %s started, attempt %d", job.kind, job.attempts, extra=extra)
            task = asyncio.create_task(work(), name=f"docgen-job-{job.id}")
            keeper = asyncio.create_task(self._keep_lease(job, token, arq_job_id, task, lost))
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if lost.is_set() and not (current and current.cancelling()):
                    log.warning("job lost its lease to another worker; stopped", extra=extra)
                    raise _leave_to_owner(self.journal) from None
                self._settle(job, "was interrupted", partial(self.journal.release, job.id, **owner))
                raise
            except JobLost:
                log.warning("job was taken over by another worker", extra=extra)
                raise _leave_to_owner(self.journal) from None
            except PermanentJobError as exc:
                error = _describe(exc)
                record = partial(self.journal.fail, job.id, error, retry=False, **owner)
                self._settle(job, f"failed permanently: {error}", record)
            except RetryLater as exc:
                delay = min(MAX_RETRY_LATER, max(0.0, exc.retry_at - self.journal.clock()))
                record = partial(
                    self.journal.fail,
                    job.id,
                    _describe(exc),
                    retry=True,
                    delay=delay,
                    count_attempt=False,
                    **owner,
                )
                self._again(self._settle(job, f"deferred by {delay:.0f} s", record))
            except Exception as exc:
                expired = isinstance(exc, TimeoutError) and deadline.expired()
                error = f"timed out after {self.job_timeout} s" if expired else _describe(exc)
                record = partial(self.journal.fail, job.id, error, retry=True, **owner)
                what = f"attempt {job.attempts} failed: {error}"
                self._again(self._settle(job, what, record, exc_info=not expired))
            else:
                elapsed = round(time.monotonic() - started, 3)
                record = partial(self.journal.complete, job.id, **owner)
                self._settle(job, f"finished in {elapsed} s", record)
            finally:
                keeper.cancel()
                if not task.done():
                    task.cancel()

    async def _keep_lease(
        self,
        job: Job,
        token: str,
        arq_job_id: str | None,
        task: asyncio.Task[None],
        lost: asyncio.Event,
    ) -> None:
        """Renew the lease every third of it; stop the handler when it is lost."""
        while not task.done():
            await asyncio.sleep(self.journal.lease / 3)
            try:
                alive = self.journal.renew(job.id, job.key, token, arq_job_id=arq_job_id)
            except RedisError as exc:  # the lease may well outlive a blip: try again
                log.warning("could not renew the job's lease: %s", exc, extra=job.log_extra())
                continue
            if not alive:
                lost.set()
                task.cancel()
                return

    def _settle(
        self,
        job: Job,
        what: str,
        record: Callable[[], Any],
        exc_info: bool = False,
    ) -> Any:
        """Record the outcome and log it; a Redis failure leaves the job to run again."""
        extra = job.log_extra()
        try:
            outcome = record()
        except RedisError:
            # Our lease runs out and the job, still in arq's queue, runs again.
            log.exception("job %s, but Redis could not record it", what, extra=extra)
            raise Retry(defer=self.journal.lease) from None
        state = outcome[0] if isinstance(outcome, tuple) else outcome
        if state is True:
            state = JobState.DONE
        if not state:
            log.warning("job %s, but another worker owns it now", what, extra=extra)
            return None
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
        return outcome

    @staticmethod
    def _again(outcome: tuple[JobState, float] | None) -> None:
        """Have arq run the job again after the wait the journal chose."""
        if outcome is not None and outcome[0] == JobState.QUEUED:
            raise Retry(defer=outcome[1])


def _leave_to_owner(journal: RedisJournal) -> Retry:
    """What a run that lost its lease raises: arq keeps the job queued, not finished.

    Finishing it would take it out of arq's queue under the run that owns it now; a
    later try finds it done (a no-op) or its PR busy (deferred again).
    """
    return Retry(defer=journal.lease)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def make_worker(
    journal: RedisJournal,
    handler: Handler,
    *,
    redis_url: str,
    concurrency: int = 2,
    job_timeout: float = 900.0,
    poll_delay: float = 0.5,
    drain_timeout: float = DRAIN_TIMEOUT,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> Worker:
    """An arq worker running ``handler`` for the jobs :meth:`RedisJournal.enqueue` writes.

    SIGTERM/SIGINT: arq stops taking jobs, lets running ones finish for
    ``drain_timeout`` s, then cancels them (:class:`JobRunner` hands them back).
    ``on_startup`` runs once arq is connected, ``on_shutdown`` after the last job
    (either may be a coroutine function).  Create the worker with the event loop it
    will run on set as the current loop.
    """
    runner = JobRunner(journal, handler, job_timeout=job_timeout)

    async def startup(ctx: dict[str, Any]) -> None:
        if on_startup is not None and inspect.isawaitable(result := on_startup()):
            await result

    async def shutdown(ctx: dict[str, Any]) -> None:
        if on_shutdown is not None and inspect.isawaitable(result := on_shutdown()):
            await result
        log.info("docgen worker stopped")

    function = func(
        runner.arq_job,
        name=JOB_FUNCTION,
        max_tries=ARQ_MAX_TRIES,
        timeout=job_timeout + 60,  # ours fires first and retries; arq's is a backstop
        keep_result=0,
    )
    worker = Worker(
        functions=[function],
        queue_name=journal.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        max_jobs=concurrency,
        poll_delay=poll_delay,
        keep_result=0,
        max_tries=ARQ_MAX_TRIES,
        job_completion_wait=int(drain_timeout),
        health_check_interval=60,
        job_serializer=_arq_dumps,
        job_deserializer=_arq_loads,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    # arq marks a started job in progress for its timeout + 10 s; a killed worker's job
    # would wait that long.  Start with our lease instead: JobRunner renews it.
    worker.in_progress_timeout_s = journal.lease
    return worker
