"""What happens to a job after an outcome: the retry and give-up rules, decided once.

Pure: no store, no clock, no I/O.  Both stores read what they know about the job
(:class:`Progress`) inside their own transaction, ask :func:`decide` with the run's
:class:`Outcome`, and write the :class:`Next` it returns — so SQLite and Redis cannot
drift apart on when a job is retried, deferred or given up.

The rules:

* **done** ends the job.
* **permanent** (:class:`~bot.runtime.queue.store.PermanentJobError`) fails it: retrying cannot help.
* **error** (any other exception, a timeout) queues it again after an exponential
  backoff with jitter (:func:`backoff_delay`), or ``delay`` when one is known, until
  ``max_attempts`` attempts were spent; then it fails, saying so.
* **deferred** (:class:`~bot.runtime.queue.store.RetryLater`, e.g. a rate limit) queues it
  again at the time asked for without spending an attempt — at most ``max_deferrals``
  times, so a job cannot loop for ever.
* **lost** (its worker died: a crash, a stale heartbeat, an expired lease) queues it
  again at once with the attempt still counted, so a job that keeps killing its
  process ends failed.
* **released** (a worker shutting down hands it back) queues it at once, attempt refunded.
* A job superseded by a newer one for the same PR is never retried: it ends
  ``superseded`` whatever happened (the newer job does its work).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

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


class Kind(enum.Enum):
    """How a run ended, as far as the queue cares."""

    DONE = "done"
    PERMANENT = "permanent"
    ERROR = "error"
    DEFERRED = "deferred"
    LOST = "lost"
    RELEASED = "released"


@dataclass(frozen=True)
class Outcome:
    """A run's end: its kind, the error to record, and a wait asked for (seconds).

    ``delay``: for ``DEFERRED`` the wait until the handler's ``retry_at``; for ``ERROR``
    a wait that replaces the backoff (a ``Retry-After``); ignored otherwise.
    """

    kind: Kind
    error: str = ""
    delay: float | None = None

    @classmethod
    def done(cls) -> Outcome:
        return cls(Kind.DONE)

    @classmethod
    def permanent(cls, error: str) -> Outcome:
        return cls(Kind.PERMANENT, error)

    @classmethod
    def failure(cls, error: str, delay: float | None = None) -> Outcome:
        return cls(Kind.ERROR, error, delay)

    @classmethod
    def deferred(cls, error: str, delay: float) -> Outcome:
        return cls(Kind.DEFERRED, error, delay)

    @classmethod
    def lost(cls, worker: str | None, attempt: int) -> Outcome:
        return cls(Kind.LOST, f"worker {worker} lost during attempt {attempt}")

    @classmethod
    def released(cls, reason: str = "worker stopped") -> Outcome:
        return cls(Kind.RELEASED, reason)


@dataclass(frozen=True)
class Progress:
    """What the store knows about the job when its run ends (attempts include this run)."""

    attempts: int
    deferrals: int = 0
    superseded: bool = False


@dataclass(frozen=True)
class Next:
    """The job's next state and the counters and error to write with it.

    ``wait``: seconds from now until the job may run again (0 unless queued).
    ``error``: the ``last_error`` to store (None: leave it as it is).
    """

    state: JobState
    attempts: int
    deferrals: int
    error: str | None
    wait: float = 0.0


@dataclass(frozen=True)
class Rules:
    """The numbers of the policy; both stores take them from their constructor."""

    max_attempts: int = MAX_ATTEMPTS
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    max_deferrals: int = MAX_DEFERRALS


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


def cut(error: str) -> str:
    """``error`` at most :data:`MAX_ERROR_CHARS` long (an ellipsis says it was cut)."""
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def decide(
    outcome: Outcome,
    progress: Progress,
    rules: Rules = Rules(),
    rng: Callable[[], float] = random.random,
) -> Next:
    """The job's next state after ``outcome``, given ``progress`` and ``rules``.

    ``rng`` draws the backoff's jitter (pass a constant for an exact wait).
    """
    attempts, deferrals = progress.attempts, progress.deferrals
    kind, error = outcome.kind, cut(outcome.error)
    if kind is Kind.DONE:
        return Next(JobState.DONE, attempts, deferrals, None)
    if kind is Kind.RELEASED:
        state = JobState.SUPERSEDED if progress.superseded else JobState.QUEUED
        return Next(state, attempts - 1, deferrals, error)
    if kind is Kind.DEFERRED:  # not the job's fault: the attempt is refunded
        attempts, deferrals = attempts - 1, deferrals + 1
    if progress.superseded:
        return Next(JobState.SUPERSEDED, attempts, deferrals, error)
    if kind is Kind.PERMANENT:
        return Next(JobState.FAILED, attempts, deferrals, error)
    if kind is Kind.DEFERRED and deferrals > rules.max_deferrals:
        gave_up = cut(f"gave up after {rules.max_deferrals} deferrals: {outcome.error}")
        return Next(JobState.FAILED, attempts, deferrals, gave_up)
    if kind is not Kind.DEFERRED and attempts >= rules.max_attempts:
        gave_up = cut(f"gave up after {attempts} attempts: {outcome.error}")
        return Next(JobState.FAILED, attempts, deferrals, gave_up)
    return Next(JobState.QUEUED, attempts, deferrals, error, _wait(outcome, attempts, rules, rng))


def _wait(outcome: Outcome, attempts: int, rules: Rules, rng: Callable[[], float]) -> float:
    if outcome.kind is Kind.LOST:  # the crashed attempt already took its time
        return 0.0
    if outcome.delay is not None:
        return max(0.0, outcome.delay)
    return backoff_delay(attempts, base=rules.backoff_base, cap=rules.backoff_cap, rng=rng)


def deferral(retry_at: float, now: float) -> float:
    """Seconds until a handler's ``retry_at``, never negative nor over the hour."""
    return min(MAX_RETRY_LATER, max(0.0, retry_at - now))
