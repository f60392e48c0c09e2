"""The Redis store's web side: record deliveries and enqueue their jobs (and arq's entries).

A mixin of :class:`bot.runtime.queue.redis_store.RedisStore`, the only part the web
processes write through.  A delivery is a ``SET NX`` key kept a week (dedupe that outlives
arq's results); inside :meth:`RedisIntake.atomic` it is first a one-minute claim, made
final by the same script that writes the job
(:data:`~bot.runtime.queue.redis_scripts.ENQUEUE`), so a web process killed between the
two writes does not make GitHub's redelivery look like a duplicate.  The script also
writes arq's job body (our encoding, :func:`arq_dumps`) and supersedes a queued
predecessor, in one round trip.
https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Self

import redis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from redis.commands.core import Script
from redis.exceptions import RedisError

from bot.runtime.queue.policy import JobState
from bot.runtime.queue.store import (
    DELIVERY_RETENTION,
    JOB_RETENTION,
    BatchItem,
    EnqueueResult,
    Recorded,
    dumps,
)

log = logging.getLogger(__name__)

JOB_FUNCTION = "docgen.job"
DELIVERY_CLAIM = 60  # s: a delivery recorded but not yet committed with its job
ARQ_JOB_EXPIRY = 2 * 24 * 3600  # arq drops a job not finished by then (deferrals included)
SUPERSEDED_TOMBSTONE_MS = 1000  # blocks an arq start racing with the removal of a job
_ID_MARKER = "@docgen-job-id@"  # in the arq job body ENQUEUE completes with the new id


def arq_dumps(value: Any) -> bytes:
    # JSON, not arq's default pickle: reading a job must never run code from Redis.
    return json.dumps(value, separators=(",", ":")).encode()


def arq_loads(raw: bytes) -> Any:
    return json.loads(raw)


class RedisIntake:
    """Deliveries and the jobs they queue, in ours and arq's structures."""

    client: redis.Redis
    prefix: str
    clock: Callable[[], float]
    _local: threading.local
    _enqueue_script: Script

    @property
    def queue_name(self) -> str:
        """arq's queue (a sorted set of arq job ids by due time)."""
        return f"{self.prefix}:queue"

    def _pr_key(self, key: str, what: str) -> str:
        return f"{self.prefix}:pr:{key}:{what}"

    def _delivery_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivery:{delivery_id}"

    @contextlib.contextmanager
    def atomic(self, *, wait: bool = True) -> Iterator[Self]:
        """Deliveries recorded in the block become final with the block's job, or are undone.

        Same use as :meth:`bot.runtime.queue.sqlite_store.SqliteStore.atomic`; nested blocks join the outer one.
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
        value = dumps(
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

        One round trip: :data:`~bot.runtime.queue.redis_scripts.ENQUEUE` runs the whole read-modify-write in Redis,
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
        """KEYS and ARGV of :data:`~bot.runtime.queue.redis_scripts.ENQUEUE` (``pending``: deliveries it makes final)."""
        now = self.clock()
        body = serialize_job(
            JOB_FUNCTION, (_ID_MARKER,), {}, None, int(now * 1000), serializer=arq_dumps
        )
        keys = [f"{self.prefix}:seq", self._pr_key(key, "latest"), self.queue_name]
        args = [
            self.prefix,
            job_key_prefix,
            retry_key_prefix,
            in_progress_key_prefix,
            key,
            kind,
            dumps(payload),
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
        job_id, prev, prev_state, behind = answer
        job_id = int(job_id)
        result = EnqueueResult(
            job_id, coalesced=prev_state == JobState.QUEUED, behind=int(behind) if behind else None
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

    def record_batch(
        self, batch: Sequence[BatchItem], *, wait: bool = True
    ) -> list[Recorded | Exception]:
        """Record many deliveries and enqueue their jobs in two round trips in all.

        The web handler's group commit (``bot.runtime.web.Recorder``): one pipeline claims every
        delivery id (``SET NX``, :data:`DELIVERY_CLAIM` s), one more runs
        :data:`~bot.runtime.queue.redis_scripts.ENQUEUE` for each new delivery with a job — which makes its claim final
        in the same script, as :meth:`atomic` does — and makes the others' claims final.
        A delivery whose script fails gives back its claim and comes back as the
        exception; the others are unaffected.  Same results as :meth:`record_delivery` +
        :meth:`enqueue` one by one: ``(new?, the job or None)``.  ``wait`` is accepted
        for the protocol: there is no write lock to wait for.
        """
        now = self.clock()
        claims: list[tuple[str, str]] = []
        with self.client.pipeline(transaction=False) as pipe:
            for item in batch:
                key = self._delivery_key(item.delivery_id)
                value = dumps(
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
