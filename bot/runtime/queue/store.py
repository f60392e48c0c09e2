"""What every job store is: the shared types and the :class:`Store` protocol.

Two stores implement it — :class:`bot.runtime.queue.sqlite_store.SqliteStore` (one SQLite file,
the default) and :class:`bot.runtime.queue.redis_store.RedisStore` (``REDIS_URL``, runs
dispatched by arq) — with the same method names, signatures and return types, so the
web app, the runner and the review job never ask which one they have.  The contract
is one test suite run against both (``tests/test_queue_contract.py``).

A run is held by a :class:`Lease`: :meth:`Store.claim` returns one, and only that
lease may renew, annotate (``save_data``), complete, fail or release the run.  A lease
that was lost (its worker presumed dead, the job taken over) changes nothing: those
calls return False / None and the caller stops quietly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.docstrings import quota
from bot.runtime.queue.policy import JobState, Next, Outcome, Rules
from bot.runtime.usage import Totals, UsageRow

DELIVERY_RETENTION = 7 * 24 * 3600.0  # redeliveries are possible for a few days: keep a week
JOB_RETENTION = 14 * 24 * 3600.0  # finished jobs, for debugging

# A PR's running LLM total across runs: the same sums ``docgen usage`` adds up.
Spend = Totals


class StoreError(Exception):
    """The store cannot be used (closed, or written by a newer docgen)."""


class StoreBusy(StoreError):
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
class RunSpend:
    """What one run of a PR spent on the LLM, as the ledger records it.

    ``repo`` defaults to the ``owner/name`` part of the PR's key.
    """

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    job_id: int | None = None
    head_sha: str | None = None
    installation_id: int | None = None
    repo: str | None = None


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


@dataclass(frozen=True)
class Lease:
    """A claimed run: the job as claimed (running, this attempt counted) and its owner.

    ``ref``: the dispatcher's id for this run (arq's job id in Redis mode), kept alive
    with the lease; None when the store's own workers took it.
    """

    job: Job
    token: str
    ref: str | None = None


@dataclass(frozen=True)
class Claim:
    """What :meth:`Store.claim` decided: run ``lease``, try again in ``retry_in`` s, or skip."""

    lease: Lease | None = None
    retry_in: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    coalesced: bool  # an older queued job for the key was superseded by this one
    behind: int | None = None  # the running job for the key this one waits for


@dataclass(frozen=True)
class BatchItem:
    """One delivery for :meth:`Store.record_batch`; ``job``: (key, kind, payload) or None."""

    delivery_id: str
    event: str
    action: str | None
    outcome: str
    job: tuple[str, str, Mapping[str, Any]] | None


# (new delivery?, the job it enqueued or None)
Recorded = tuple[bool, EnqueueResult | None]


class Store(Protocol):
    """Deliveries, jobs, leases and the token ledger: what the App keeps durably.

    Every method is synchronous and quick (one transaction or a few round trips);
    callers on an event loop call them directly.
    """

    rules: Rules
    # What the store raises when its backing service fails (a disk, a connection):
    # the runner and the web app catch these, and nothing broader.
    errors: tuple[type[BaseException], ...]

    clock: Callable[[], float]

    @property
    def max_attempts(self) -> int: ...

    # --- the web side: a delivery and its job, atomically
    def atomic(self, *, wait: bool = True) -> contextlib.AbstractContextManager[Any]: ...

    def record_delivery(
        self, delivery_id: str, event: str, action: str | None, *, outcome: str
    ) -> bool: ...

    def delivery_seen(self, delivery_id: str) -> bool: ...

    def enqueue(
        self, key: str, kind: str, payload: Mapping[str, Any], *, delivery_id: str | None = None
    ) -> EnqueueResult: ...

    def record_batch(
        self, batch: Sequence[BatchItem], *, wait: bool = True
    ) -> list[Recorded | Exception]: ...

    # --- runs
    def claim(self, token: str, job_id: int | None = None, *, ref: str | None = None) -> Claim: ...

    def renew(self, lease: Lease) -> bool: ...

    def save_data(self, lease: Lease, data: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def complete(self, lease: Lease) -> Next | None: ...

    def fail(self, lease: Lease, outcome: Outcome) -> Next | None: ...

    def release(self, lease: Lease, reason: str = "worker stopped") -> Next | None: ...

    def get(self, job_id: int) -> Job | None: ...

    def is_superseded(self, job_id: int) -> bool: ...

    def superseded_data(self, job_id: int) -> list[dict[str, Any]]: ...

    # --- installations deleted or suspended: their cached tokens are void everywhere
    def forget_installation(self, installation_id: int) -> None: ...

    def forgotten_after(self, cursor: str) -> tuple[list[int], str]: ...

    def last_forgotten(self) -> str: ...

    # --- the ledger and the installations' caps
    def add_spend(self, key: str, spend: RunSpend) -> None: ...

    def spent(self, key: str) -> Spend: ...

    def usage(self, month: str | None = None) -> list[UsageRow]: ...

    def reserve_tokens(
        self, installation_id: int, tokens: int, caps: quota.Caps
    ) -> quota.Hold | quota.CapHit: ...

    def settle_tokens(self, hold: quota.Hold, actual: int) -> None: ...

    def cap_used(self, installation_id: int) -> quota.Used: ...

    # --- health
    def counts(self) -> dict[str, int]: ...

    def writable(self) -> bool: ...

    def close(self) -> None: ...


def describe(exc: BaseException) -> str:
    """``Type: message`` (or the type alone): how a run's error is recorded."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def dumps(value: Mapping[str, Any]) -> str:
    """Compact JSON for a job's payload and data (non-ASCII kept as is)."""
    return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))
