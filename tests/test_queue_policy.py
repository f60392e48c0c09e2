"""The retry policy on its own: every outcome, at the edges of every limit (no store)."""

from __future__ import annotations

import pytest

from bot.runtime.queue.policy import (
    MAX_ERROR_CHARS,
    JobState,
    Next,
    Outcome,
    Progress,
    Rules,
    backoff_delay,
    decide,
    deferral,
)

RULES = Rules(max_attempts=3, backoff_base=5.0, backoff_cap=600.0, max_deferrals=2)
FULL = lambda: 1.0  # noqa: E731  (the backoff's full step: exact waits)

# (outcome, progress before, next)  — attempts already include the run that just ended.
TABLE = [
    ("done", Outcome.done(), Progress(1), Next(JobState.DONE, 1, 0, None)),
    (
        "an error is retried after the first step",
        Outcome.failure("502"),
        Progress(1),
        Next(JobState.QUEUED, 1, 0, "502", 5.0),
    ),
    (
        "the backoff doubles",
        Outcome.failure("502"),
        Progress(2),
        Next(JobState.QUEUED, 2, 0, "502", 10.0),
    ),
    (
        "a known wait replaces the backoff",
        Outcome.failure("Retry-After: 90", delay=90),
        Progress(1),
        Next(JobState.QUEUED, 1, 0, "Retry-After: 90", 90.0),
    ),
    (
        "a negative wait is no wait",
        Outcome.failure("x", delay=-3),
        Progress(1),
        Next(JobState.QUEUED, 1, 0, "x", 0.0),
    ),
    (
        "the last attempt gives up, saying so",
        Outcome.failure("timeout"),
        Progress(3),
        Next(JobState.FAILED, 3, 0, "gave up after 3 attempts: timeout"),
    ),
    (
        "a permanent error fails at once",
        Outcome.permanent("PR gone"),
        Progress(1),
        Next(JobState.FAILED, 1, 0, "PR gone"),
    ),
    (
        "a deferral refunds the attempt",
        Outcome.deferred("rate limited", 30),
        Progress(3, 0),
        Next(JobState.QUEUED, 2, 1, "rate limited", 30.0),
    ),
    (
        "the last allowed deferral",
        Outcome.deferred("rate limited", 0),
        Progress(1, 1),
        Next(JobState.QUEUED, 0, 2, "rate limited", 0.0),
    ),
    (
        "one deferral too many gives up",
        Outcome.deferred("rate limited", 0),
        Progress(1, 2),
        Next(JobState.FAILED, 0, 3, "gave up after 2 deferrals: rate limited"),
    ),
    (
        "a lost run is queued at once, its attempt counted",
        Outcome.lost("w1", 1),
        Progress(1),
        Next(JobState.QUEUED, 1, 0, "worker w1 lost during attempt 1", 0.0),
    ),
    (
        "a run that keeps getting lost ends failed",
        Outcome.lost("w1", 3),
        Progress(3),
        Next(JobState.FAILED, 3, 0, "gave up after 3 attempts: worker w1 lost during attempt 3"),
    ),
    (
        "a released run is queued at once, attempt refunded",
        Outcome.released(),
        Progress(3, 1),
        Next(JobState.QUEUED, 2, 1, "worker stopped", 0.0),
    ),
]
SUPERSEDED = [
    ("error", Outcome.failure("502"), Progress(1, superseded=True), 1, 0),
    ("last attempt", Outcome.failure("502"), Progress(3, superseded=True), 3, 0),
    ("permanent", Outcome.permanent("x"), Progress(1, superseded=True), 1, 0),
    ("deferred", Outcome.deferred("x", 5), Progress(1, superseded=True), 0, 1),
    ("lost", Outcome.lost("w", 1), Progress(1, superseded=True), 1, 0),
    ("released", Outcome.released(), Progress(1, superseded=True), 0, 0),
]


@pytest.mark.parametrize(
    ("outcome", "progress", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_the_next_state_after_each_outcome(outcome, progress, expected) -> None:
    assert decide(outcome, progress, RULES, rng=FULL) == expected


@pytest.mark.parametrize(
    ("outcome", "progress", "attempts", "deferrals"),
    [row[1:] for row in SUPERSEDED],
    ids=[row[0] for row in SUPERSEDED],
)
def test_a_superseded_job_is_never_retried(outcome, progress, attempts, deferrals) -> None:
    after = decide(outcome, progress, RULES, rng=FULL)
    assert (after.state, after.attempts, after.deferrals, after.wait) == (
        JobState.SUPERSEDED,
        attempts,
        deferrals,
        0.0,
    )


def test_a_superseded_job_that_finished_is_done() -> None:
    assert decide(Outcome.done(), Progress(1, superseded=True), RULES).state is JobState.DONE


def test_the_jitter_comes_from_the_rng_given() -> None:
    half = decide(Outcome.failure("x"), Progress(2), RULES, rng=lambda: 0.0)
    assert half.wait == 5.0  # half of the 10 s step is fixed
    assert 5.0 <= decide(Outcome.failure("x"), Progress(2), RULES).wait <= 10.0


@pytest.mark.parametrize("kind", ["failure", "permanent", "gave up"])
def test_errors_are_cut_with_an_ellipsis(kind: str) -> None:
    long = "x" * 100_000
    outcome = Outcome.permanent(long) if kind == "permanent" else Outcome.failure(long)
    attempts = 3 if kind == "gave up" else 1
    error = decide(outcome, Progress(attempts), RULES).error
    assert error is not None and len(error) == MAX_ERROR_CHARS and error.endswith("…")
    assert error.startswith("gave up after 3 attempts: x") == (kind == "gave up")


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    full = [backoff_delay(n, rng=FULL) for n in range(1, 9)]
    assert full == [5, 10, 20, 40, 80, 160, 320, 600]
    assert backoff_delay(1, rng=lambda: 0.0) == 2.5
    assert backoff_delay(30, rng=lambda: 0.0) == 300
    assert 2.5 <= backoff_delay(1) <= 5


@pytest.mark.parametrize(
    ("retry_at", "now", "wait"),
    [(130.0, 100.0, 30.0), (90.0, 100.0, 0.0), (100.0 + 86_400, 100.0, 3600.0)],
    ids=["ahead", "past", "capped at the hour"],
)
def test_a_deferral_waits_until_retry_at_within_the_hour(retry_at, now, wait) -> None:
    assert deferral(retry_at, now) == wait
