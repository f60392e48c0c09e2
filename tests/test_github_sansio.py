"""bot.runtime.github.sansio on its own: GitHub's recorded answers → one step each, no I/O.

The answers (status, headers, body) are under ``tests/fixtures/github_answers/``, each
with its source.  What each must lead to is GitHub's documented rule, not our code's:
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit
— a primary limit (``x-ratelimit-remaining: 0``) waits until ``x-ratelimit-reset``; a
secondary limit waits ``retry-after`` seconds when sent, else at least a minute; both
stop the whole installation, not only one request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.runtime.github import sansio
from bot.runtime.github.errors import (
    Forbidden,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    Unauthorized,
    Unprocessable,
)

ANSWERS = Path(__file__).parent / "fixtures" / "github_answers"
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
RESET = 1_700_000_120  # the recorded x-ratelimit-reset
MINUTE = 60.0
# Generous, so that the classification is seen apart from giving up (tested below).
PATIENT = sansio.RetryPolicy(max_retries=3, max_wait=3_600.0)
LABEL = "GET /repos/{owner}/{repo}/pulls/{pull_number}"


def recorded(name: str) -> sansio.Answer:
    data = json.loads((ANSWERS / f"{name}.json").read_text(encoding="utf-8"))
    return sansio.Answer(data["status"], data["headers"], data["body"].encode("utf-8"))


def decide(answer: Any, **kw: Any) -> sansio.Step:
    kw.setdefault("tries", sansio.Tries())
    kw.setdefault("policy", PATIENT)
    return sansio.decide(LABEL, answer, now=NOW, **kw)


# name, graphql, the earliest moment GitHub allows the next request (epoch seconds)
RATE_LIMITS = [
    ("primary_rate_limit_403", False, RESET),
    ("primary_rate_limit_429", False, RESET),
    ("secondary_rate_limit_retry_after", False, NOW + 30),
    ("secondary_rate_limit_no_retry_after", False, NOW + MINUTE),
    ("secondary_rate_limit_429", False, NOW + MINUTE),
    ("abuse_detection_retry_after_date", False, NOW + 90),  # the date is 90 s on
    ("graphql_rate_limited_200", True, RESET),
    ("graphql_secondary_rate_limit_200", True, NOW + MINUTE),
]


@pytest.mark.parametrize(
    ("name", "graphql", "earliest"), RATE_LIMITS, ids=[r[0] for r in RATE_LIMITS]
)
def test_a_rate_limit_stops_the_installation_until_github_allows_the_next_request(
    name: str, graphql: bool, earliest: float
) -> None:
    step = decide(recorded(name), graphql=graphql)
    assert isinstance(step, sansio.Retry)
    assert step.block_until is not None
    # Not before GitHub allows it, and not much later (a second of margin for clocks).
    assert earliest <= step.block_until <= earliest + 1.5
    assert step.delay == pytest.approx(step.block_until - NOW)


@pytest.mark.parametrize("name", ["server_error_502", "unavailable_503_html"])
def test_a_5xx_is_retried_with_growing_backoff_for_this_request_only(name: str) -> None:
    answer = recorded(name)
    delays = []
    for attempt in range(3):
        step = decide(answer, tries=sansio.Tries(attempt=attempt))
        assert isinstance(step, sansio.Retry)
        assert step.block_until is None  # GitHub failing is not a limit on the installation
        assert str(answer.status) in step.problem
        delays.append(step.delay)
    assert 0 < delays[0] < delays[1] < delays[2]


def test_a_non_json_5xx_is_described_by_its_status_phrase():
    step = decide(recorded("unavailable_503_html"))
    assert isinstance(step, sansio.Retry) and step.problem == "503 Service Unavailable"


def test_a_network_failure_is_retried_like_a_5xx():
    step = decide(sansio.NetworkFailure("ConnectError"))
    assert isinstance(step, sansio.Retry) and step.block_until is None
    assert step.problem == "network error (ConnectError)"


def test_bad_credentials_refresh_the_token_once_then_raise():
    answer = recorded("bad_credentials_401")
    assert isinstance(decide(answer), sansio.Refresh)
    again = decide(answer, tries=sansio.Tries(refreshed=True))
    assert isinstance(again, sansio.Fail) and type(again.error) is Unauthorized
    assert "Bad credentials" in str(again.error) and again.error.status == 401
    cannot = decide(answer, can_refresh=False)  # a token cache that is not ours to empty
    assert isinstance(cannot, sansio.Fail) and type(cannot.error) is Unauthorized


# name, the exception, a text GitHub sent that the error must carry
FAILURES = [
    ("not_found_404", NotFound, "Not Found"),
    ("forbidden_403", Forbidden, "Resource not accessible by integration"),
    ("validation_failed_422", Unprocessable, "missing_field"),
    ("review_line_not_in_diff_422", Unprocessable, "Line could not be resolved"),
]


@pytest.mark.parametrize(("name", "kind", "says"), FAILURES, ids=[f[0] for f in FAILURES])
def test_a_client_error_raises_its_own_exception_with_githubs_words(
    name: str, kind: type[GitHubError], says: str
) -> None:
    answer = recorded(name)
    step = decide(answer)
    assert isinstance(step, sansio.Fail) and step.block_until is None
    assert type(step.error) is kind
    assert step.error.status == answer.status and step.error.route == LABEL
    assert says in str(step.error)
    if isinstance(step.error, Unprocessable):
        assert says in step.error.reason


def test_an_unknown_4xx_is_a_plain_github_error():
    step = decide(sansio.Answer(410, {}, b'{"message": "Gone"}'))
    assert isinstance(step, sansio.Fail) and type(step.error) is GitHubError
    assert "410 Gone" in str(step.error)


@pytest.mark.parametrize("name", ["ok_200", "not_modified_304", "graphql_partial_not_found_200"])
def test_answers_that_are_not_errors_are_returned(name: str) -> None:
    assert isinstance(decide(recorded(name), graphql=True), sansio.Done)
    assert isinstance(decide(recorded(name)), sansio.Done)


def test_a_graphql_rate_limit_is_only_one_when_the_request_was_graphql():
    assert isinstance(decide(recorded("graphql_rate_limited_200")), sansio.Done)


def test_giving_up_hands_back_the_moment_github_allows_the_next_request():
    # Default policy: one request waits at most a minute; the reset is two minutes away.
    step = decide(recorded("primary_rate_limit_403"), policy=sansio.RetryPolicy())
    assert isinstance(step, sansio.Fail) and isinstance(step.error, GitHubUnavailable)
    assert RESET <= step.error.retry_at <= RESET + 1.5
    assert step.block_until == step.error.retry_at  # the installation still stops
    assert "giving up after 1 attempt(s)" in str(step.error)


def test_giving_up_after_the_policys_retries():
    policy = sansio.RetryPolicy(max_retries=3)
    step = decide(recorded("server_error_502"), tries=sansio.Tries(attempt=3), policy=policy)
    assert isinstance(step, sansio.Fail) and isinstance(step.error, GitHubUnavailable)
    assert step.error.status == 502 and step.error.retry_at > NOW
    assert "giving up after 4 attempt(s)" in str(step.error)


def test_giving_up_when_the_wait_would_pass_the_policys_budget():
    policy = sansio.RetryPolicy(max_wait=10.0, backoff=4.0)
    step = decide(
        recorded("server_error_502"), tries=sansio.Tries(attempt=1, waited=4.0), policy=policy
    )
    assert isinstance(step, sansio.Fail) and isinstance(step.error, GitHubUnavailable)


def test_blocked_wait():
    tries = sansio.Tries(waited=10.0)
    assert sansio.blocked_wait(LABEL, NOW - 5, now=NOW, tries=tries, policy=PATIENT) == 0.0
    assert sansio.blocked_wait(LABEL, NOW + 20, now=NOW, tries=tries, policy=PATIENT) == 20.0
    short = sansio.RetryPolicy(max_wait=25.0)
    with pytest.raises(GitHubUnavailable) as raised:
        sansio.blocked_wait(LABEL, NOW + 20, now=NOW, tries=tries, policy=short)
    assert raised.value.retry_at == NOW + 20
    assert "2023-11-14T22:13:40Z" in str(raised.value)


def test_header_names_are_matched_whatever_their_case():
    upper = sansio.Answer(403, {"Retry-After": "7"}, b'{"message": "x"}')
    lower = sansio.Answer(403, httpx.Headers({"retry-after": "7"}), b'{"message": "x"}')
    assert (
        decide(upper)
        == decide(lower)
        == sansio.Retry(delay=7.0, problem="403 x", block_until=NOW + 7)
    )


def test_rate_limit_remaining():
    assert sansio.rate_limit_remaining(recorded("forbidden_403").headers) == 4999
    assert sansio.rate_limit_remaining(recorded("server_error_502").headers) is None


# https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
DOCS_LINK = (
    '<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", '
    '<https://api.github.com/repositories/1300192/issues?page=4>; rel="next", '
    '<https://api.github.com/repositories/1300192/issues?page=515>; rel="last", '
    '<https://api.github.com/repositories/1300192/issues?page=1>; rel="first"'
)


def test_next_page_follows_rel_next_on_the_same_host_only():
    base = httpx.URL("https://api.github.com/")
    assert sansio.next_page(DOCS_LINK, base) == httpx.URL(
        "https://api.github.com/repositories/1300192/issues?page=4"
    )
    assert sansio.next_page(DOCS_LINK.split(", ")[0], base) is None
    assert sansio.next_page("", base) is None
    with pytest.raises(GitHubError, match="points away"):
        sansio.next_page(DOCS_LINK.replace("api.github.com", "evil.example"), base)


@pytest.mark.parametrize(
    "body",
    [b"<html>502</html>", b"[]", b'{"data": {"viewer": null}}', b'{"errors": [{"type": 1}]}'],
    ids=["not-json", "not-an-object", "no-errors", "errors-without-message"],
)
def test_an_answer_that_is_not_graphqls_error_shape_is_not_a_rate_limit(body: bytes) -> None:
    # The caller reports it as an unexpected answer; it is not waited for.
    assert sansio.graphql_rate_limit(body) is None
    assert isinstance(decide(sansio.Answer(200, {}, body), graphql=True), sansio.Done)
