"""GitHub's HTTP protocol without I/O: which requests are writes, and what an answer means.

In the spirit of gidgethub's ``sansio``: nothing here sends, sleeps or reads a clock.
:func:`decide` turns one answer (status, headers, body — or a network failure) into one
:class:`Step`: return it (:class:`Done`), try again after N seconds (:class:`Retry`,
with ``block_until`` when the whole installation must wait for a rate limit), refresh
the installation token (:class:`Refresh`) or raise (:class:`Fail`).  The client
(:class:`bot.runtime.github.client.PullRequestAPI`) is a short loop that sends, asks
:func:`decide`, and does what it says.
"""

from __future__ import annotations

import email.utils
import http
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx

from bot.runtime.github.errors import (
    Forbidden,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    Unauthorized,
    Unprocessable,
)

# Supported by github.com and by every GitHub Enterprise Server release that has versions:
# https://docs.github.com/en/rest/about-the-rest-api/api-versions
API_VERSION = "2022-11-28"
USER_AGENT = "docgen (+https://github.com/apps/docgen)"
MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
GRAPHQL_ROUTE = "/graphql"

_GRAPHQL_COMMENT = re.compile(r"#[^\n\r]*")
_GRAPHQL_OPERATION = re.compile(r"\s*(?:(query|mutation|subscription)\b|(\{))")
_NEXT_LINK = re.compile(r'<([^<>]+)>;\s*rel="next"')
# GraphQL's own error types; a rate limit is RATE_LIMITED, or RATE_LIMIT in newer answers
# (https://github.com/yanyongyu/githubkit/issues/271).
_GRAPHQL_RATE_LIMITS = frozenset({"RATE_LIMITED", "RATE_LIMIT"})


def iso_time(epoch: float) -> str:
    """``epoch`` as GitHub's timestamps are written (ISO 8601, UTC, whole seconds)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_write(request: httpx.Request) -> bool:
    """Whether a request creates content (and is paced): POST/PATCH/PUT/DELETE, except a
    GraphQL *query*, which is a POST that only reads."""
    if request.method not in MUTATING_METHODS:
        return False
    if request.method != "POST" or not request.url.path.endswith(GRAPHQL_ROUTE):
        return True
    try:
        document = json.loads(request.content).get("query")
    except (httpx.RequestNotRead, ValueError, AttributeError):
        return True
    if not isinstance(document, str):
        return True
    match = _GRAPHQL_OPERATION.match(_GRAPHQL_COMMENT.sub("", document))
    return match is None or match[1] not in ("query", None)


# ------------------------------------------------------------------------ answers


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from GitHub, as received: header names are matched lower-cased."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    reason: str | None = None  # the reason phrase; None: the standard one for ``status``

    def __post_init__(self) -> None:
        lowered = {name.lower(): value for name, value in self.headers.items()}
        object.__setattr__(self, "headers", lowered)

    @property
    def phrase(self) -> str:
        if self.reason is not None:
            return self.reason
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return ""


@dataclass(frozen=True)
class NetworkFailure:
    """No answer at all: ``kind`` names the transport error (``ConnectError``, …)."""

    kind: str


def rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """``x-ratelimit-remaining`` of an answer, when it sends one.

    https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#checking-the-status-of-your-rate-limit
    """
    remaining = headers.get("x-ratelimit-remaining")
    return int(remaining) if remaining is not None and remaining.isdigit() else None


def next_page(link: str, base: httpx.URL) -> httpx.URL | None:
    """The ``rel="next"`` URL of a ``Link`` header, or None on the last page.

    https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api

    Raises:
        GitHubError: the link points to another host (it would get our token).
    """
    match = _NEXT_LINK.search(link)
    if match is None:
        return None
    url = httpx.URL(match[1])
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise GitHubError(f"pagination link points away from {base.host}")
    return url


def error_details(answer: Answer) -> tuple[str, list[str]]:
    """GitHub's ``message`` and ``errors`` (strings or objects) from an error answer.

    https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api
    """
    try:
        data = json.loads(answer.body)
    except ValueError:
        return answer.phrase or "error", []
    data = data if isinstance(data, dict) else {}
    message = str(data.get("message") or answer.phrase or "error")
    errors: list[str] = []
    for item in data.get("errors") or []:
        if isinstance(item, str):
            errors.append(item)
        elif isinstance(item, dict):
            text = item.get("message") or " ".join(
                str(item[k]) for k in ("resource", "field", "code") if item.get(k)
            )
            if text:
                errors.append(str(text))
    return message, errors


def graphql_rate_limit(body: bytes) -> str | None:
    """GitHub's message when a GraphQL answer (status 200) is a rate limit, else None.

    GraphQL answers a rate limit with status 200 and an error of type RATE_LIMITED.
    https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit
    """
    try:
        data = json.loads(body)
    except ValueError:
        return None  # not a GraphQL answer: the caller says so
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return None
    if not all(isinstance(e, dict) and isinstance(e.get("message"), str) for e in errors):
        return None  # not GraphQL's error shape: the caller says so
    for error in errors:
        if error.get("type") in _GRAPHQL_RATE_LIMITS or "secondary rate limit" in error["message"]:
            return error["message"] or "rate limited"
    return None


# ------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying before handing the job back with ``retry_at``.

    ``max_retries`` bounds retries of one request (5xx, network errors, rate limits);
    ``max_wait`` bounds the seconds one request may spend waiting in total.  5xx and
    network errors wait ``backoff``, 2×, 4× … seconds.  A rate limit without a
    ``retry-after`` or reset header waits ``rate_limit_wait`` ("at least one minute").
    """

    max_retries: int = 3
    max_wait: float = 60.0
    backoff: float = 1.0
    rate_limit_wait: float = 60.0

    def backoff_delay(self, attempt: int) -> float:
        return self.backoff * 2**attempt

    def rate_limit_delay(
        self, status: int, headers: Mapping[str, str], message: str, now: float
    ) -> float | None:
        """Seconds GitHub asks us to wait, or None when the answer is not a rate limit.

        A primary or secondary rate limit is a 403 or a 429: wait for ``retry-after``,
        else until ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0, else (a
        429, or a 403 whose message says "rate limit") at least a minute.
        https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit
        """
        if status not in (403, 429):
            return None
        asked = self._asked_wait(headers, now)
        if asked is not None:
            return asked
        if status == 429 or "rate limit" in message.lower():
            return self.rate_limit_wait
        return None

    def graphql_rate_limit_delay(self, headers: Mapping[str, str], now: float) -> float:
        """Seconds to wait after a GraphQL answer whose ``errors`` say RATE_LIMITED.

        GraphQL answers a rate limit with status 200: wait for ``retry-after``, else
        until ``x-ratelimit-reset`` when nothing remains, else at least a minute.
        https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit
        """
        asked = self._asked_wait(headers, now)
        return self.rate_limit_wait if asked is None else asked

    def _asked_wait(self, headers: Mapping[str, str], now: float) -> float | None:
        if "retry-after" in headers:
            return retry_after_seconds(headers["retry-after"], now, self.rate_limit_wait)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            try:
                return max(float(headers["x-ratelimit-reset"]) - now, 0.0) + 1.0
            except ValueError:
                return self.rate_limit_wait
        return None


def retry_after_seconds(value: str, now: float, default: float) -> float:
    """``Retry-After`` is seconds, or (from proxies) an HTTP date (RFC 9110, 10.2.3)."""
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return default


# -------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Tries:
    """What one request has been through: retries so far, seconds waited, token refreshed."""

    attempt: int = 0
    waited: float = 0.0
    refreshed: bool = False

    def retried(self) -> Tries:
        return replace(self, attempt=self.attempt + 1)

    def waiting(self, seconds: float) -> Tries:
        return replace(self, waited=self.waited + seconds)

    def after_refresh(self) -> Tries:
        return replace(self, refreshed=True)


@dataclass(frozen=True, kw_only=True)
class Step:
    """What to do with an answer.  ``block_until`` (epoch seconds): a rate limit, so
    every request of the installation waits until then, not only this one."""

    block_until: float | None = None


@dataclass(frozen=True, kw_only=True)
class Done(Step):
    """The answer is the result: return it."""


@dataclass(frozen=True, kw_only=True)
class Refresh(Step):
    """Drop the cached installation token and send again (once)."""


@dataclass(frozen=True, kw_only=True)
class Retry(Step):
    """Send again after ``delay`` seconds (or at ``block_until``)."""

    delay: float
    problem: str


@dataclass(frozen=True, kw_only=True)
class Fail(Step):
    """Raise ``error``."""

    error: GitHubError


# Each error status GitHub documents, as its exception:
# https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api
ERRORS: dict[int, type[GitHubError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: Unprocessable,
}


def decide(
    label: str,
    answer: Answer | NetworkFailure,
    *,
    tries: Tries,
    policy: RetryPolicy,
    now: float,
    graphql: bool = False,
    can_refresh: bool = True,
) -> Step:
    """What to do with GitHub's ``answer`` to the request ``label`` (``GET /route``).

    ``graphql``: a 200 whose ``errors`` say RATE_LIMITED is a rate limit like a REST
    403.  ``can_refresh``: the client can drop its cached token (asked once per request).
    """
    if isinstance(answer, NetworkFailure):
        delay = policy.backoff_delay(tries.attempt)
        return _again(label, f"network error ({answer.kind})", None, delay, tries, policy, now)
    status = answer.status
    if not 400 <= status <= 599:  # what githubkit (httpx's is_error) does not raise for
        limit = graphql_rate_limit(answer.body) if graphql else None
        if limit is None:
            return Done()
        delay = policy.graphql_rate_limit_delay(answer.headers, now)
        return _again(label, f"{status} {limit}", status, delay, tries, policy, now, limited=True)
    message, errors = error_details(answer)
    problem = f"{status} {message}"
    rate = policy.rate_limit_delay(status, answer.headers, " ".join([message, *errors]), now)
    if rate is not None:
        return _again(label, problem, status, rate, tries, policy, now, limited=True)
    if status >= 500:  # GitHub failing, perhaps for a moment: back off exponentially
        return _again(
            label, problem, status, policy.backoff_delay(tries.attempt), tries, policy, now
        )
    if status == 401 and can_refresh and not tries.refreshed:
        # A cached token GitHub no longer accepts (revoked, or our clock is off):
        # githubkit would keep sending it until it expires.
        # https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation
        return Refresh()
    text = f"{label}: {problem}" + (f" ({'; '.join(errors)})" if errors else "")
    kind = ERRORS.get(status, GitHubError)
    return Fail(error=kind(text, status=status, route=label, errors=errors))


def _again(
    label: str,
    problem: str,
    status: int | None,
    delay: float,
    tries: Tries,
    policy: RetryPolicy,
    now: float,
    *,
    limited: bool = False,
) -> Retry | Fail:
    """Retry after ``delay``, or give up when the policy's retries or wait are spent."""
    block_until = now + delay if limited else None
    if tries.attempt >= policy.max_retries or tries.waited + delay > policy.max_wait:
        error = GitHubUnavailable(
            f"{label}: {problem}; giving up after {tries.attempt + 1} attempt(s)",
            retry_at=now + delay,
            status=status,
            route=label,
        )
        return Fail(error=error, block_until=block_until)
    return Retry(delay=delay, problem=problem, block_until=block_until)


def blocked_wait(
    label: str, blocked_until: float, *, now: float, tries: Tries, policy: RetryPolicy
) -> float:
    """Seconds to wait before sending while the installation is rate limited (0: none).

    Raises:
        GitHubUnavailable: the wait would take the request past ``policy.max_wait``.
    """
    block = blocked_until - now
    if block <= 0:
        return 0.0
    if tries.waited + block > policy.max_wait:
        raise GitHubUnavailable(
            f"{label}: rate limited by GitHub until {iso_time(blocked_until)}",
            retry_at=blocked_until,
            route=label,
        )
    return block
