"""The only module that talks to GitHub: App auth, pull-request reads, review and check-run writes.

Built on githubkit (async).  What githubkit does for us, and what we add:

* **Auth.** ``AppAuthStrategy`` signs the App's JWT (RS256, ``iat`` back-dated a minute)
  and ``as_installation(id)`` exchanges it for an installation token, which githubkit
  caches in the client's cache strategy until one minute before ``expires_at``.  We give
  every installation client its *own* in-memory cache (githubkit's default is one
  process-wide cache keyed by app id, which would keep serving a JWT signed with an
  old key), so :meth:`InstallationClients.forget` drops an installation's token with it.
* **Retries.** githubkit's ``auto_retry`` sleeps with a real clock and without a cap
  (a primary rate limit can mean an hour).  We switch it off and retry here: secondary
  and primary rate limits wait as GitHub asks, 5xx and network errors back off
  exponentially, and anything that would wait past :attr:`RetryPolicy.max_wait` raises
  :class:`GitHubUnavailable` with ``retry_at`` for the job queue.
  https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit
* **Pacing.** githubkit's ``throttler`` hook sees every request; :class:`WritePacer`
  (one per installation client) lets reads through and runs content-creating requests
  one at a time, at least a second apart, as GitHub asks.
  https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests
* **Connections.** githubkit opens a new ``httpx.AsyncClient`` (connection pool, TLS
  handshake) for every request unless the caller is inside ``async with github:``, whose
  client lives only in that task's context.  :class:`PooledGitHub` keeps one client per
  installation while a job holds it (``async with api:``), and every client shares one
  SSL context per process (building one loads the CA bundle: ~40 ms each).
* **Reads.** A PR's head contents come from GraphQL, up to 100 files per query
  (:meth:`PullRequestAPI.fetch_changes`); REST blobs only for what GraphQL cannot give
  (binary, truncated or non-UTF-8 text).  Only files the pipeline will review (a
  patch, in scope), and each measured first (``byteSize``): a file over the size limit
  or the run's byte cap is never downloaded.
* **Versions.** Requests pin ``X-GitHub-Api-Version: 2022-11-28`` (githubkit sends its
  newest, which GitHub Enterprise Server rejects).  Responses are read as plain JSON for
  the few fields we need rather than through githubkit's full models, which older GHES
  releases do not always satisfy.

Payloads are built by pure functions (:func:`review_payload`,
:func:`check_run_create_payload`, :func:`check_run_update_payloads`) and tested with ``==``.
Exception messages carry the method, route, status and GitHub's message: never a
token, the JWT or the private key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.utils
import functools
import json
import logging
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import BaseCacheStrategy, MemCacheStrategy
from githubkit.config import Config, get_config
from githubkit.exception import RequestError, RequestFailed
from githubkit.graphql import GraphQLError, GraphQLNamespace, GraphQLResponse
from githubkit.response import Response
from githubkit.throttling import BaseThrottler, LocalThrottler

from bot import render
from bot.config import Settings
from bot.models import FileChange, Suggestion

__all__ = [
    "API_VERSION",
    "CHECK_NAME",
    "GENERATE_ACTION",
    "GRAPHQL_BATCH",
    "CheckRunAction",
    "Clock",
    "FetchLimits",
    "FileEntry",
    "Forbidden",
    "GitHubError",
    "GitHubUnavailable",
    "HeadContents",
    "InstallationClients",
    "NotFound",
    "PooledGitHub",
    "PullChanges",
    "PullInfo",
    "PullRequestAPI",
    "RetryPolicy",
    "ReviewComment",
    "ReviewResult",
    "Unauthorized",
    "Unprocessable",
    "WritePacer",
    "blob_sizes_query",
    "check_run_create_payload",
    "check_run_output",
    "check_run_update_payloads",
    "graphql_url",
    "head_blobs_query",
    "is_own_comment",
    "is_write",
    "make_app_github",
    "review_payload",
    "shared_ssl_context",
]

log = logging.getLogger(__name__)

# Supported by github.com and by every GitHub Enterprise Server release that has versions:
# https://docs.github.com/en/rest/about-the-rest-api/api-versions
API_VERSION = "2022-11-28"
USER_AGENT = "docgen (+https://github.com/apps/docgen)"
CHECK_NAME = "docgen"
# https://docs.github.com/en/rest/checks/runs#update-a-check-run
MAX_ANNOTATIONS_PER_REQUEST = 50
# output.summary and output.text: 65,535 bytes of UTF-8 each (render.SUMMARY_LIMIT says why)
OUTPUT_TEXT_LIMIT = render.SUMMARY_LIMIT
MAX_ACTIONS = 3
# https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
MAX_PR_FILES = 3_000
PER_PAGE = 100
MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# The "object" media type answers files of 1-100 MB with empty content and encoding
# "none" (the default media type refuses them):
# https://docs.github.com/en/rest/repos/contents#get-repository-content
_OBJECT_MEDIA = "application/vnd.github.object+json"
_NEXT_LINK = re.compile(r'<([^<>]+)>;\s*rel="next"')
# Aliased ``object`` fields per GraphQL query: 100 keeps a query at 1 point and well
# under the node limit.
# https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api
GRAPHQL_BATCH = 100
GRAPHQL_ROUTE = "/graphql"
_TRUNCATED = "\n\n*… truncated (GitHub's size limit)*"

Conclusion = Literal[
    "success", "neutral", "failure", "action_required", "cancelled", "skipped", "timed_out"
]


# --------------------------------------------------------------------------- errors


class GitHubError(Exception):
    """A GitHub request failed.  ``route`` is the template (``GET /repos/{owner}/…``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        route: str = "",
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.route = route
        self.errors = tuple(errors)


class NotFound(GitHubError):
    """404: the resource does not exist, or the installation cannot see it."""


class Unauthorized(GitHubError):
    """401: GitHub rejected the JWT or the installation token (clock skew, revoked)."""


class Forbidden(GitHubError):
    """403 that is not a rate limit: the App lacks a permission, or the resource is locked."""


class Unprocessable(GitHubError):
    """422: GitHub understood the request and refused it; ``errors`` says why."""

    @property
    def reason(self) -> str:
        """GitHub's message and its error details, on one line."""
        return "; ".join(self.errors) if self.errors else str(self)


class GitHubUnavailable(GitHubError):
    """GitHub is rate limiting us or failing; try again at ``retry_at`` (epoch seconds)."""

    def __init__(
        self, message: str, *, retry_at: float, status: int | None = None, route: str = ""
    ) -> None:
        super().__init__(message, status=status, route=route)
        self.retry_at = retry_at


# ----------------------------------------------------------------- clock and pacing


class Clock:
    """Wall time, monotonic time and sleep; tests pass a fake that only pretends to wait."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_GRAPHQL_COMMENT = re.compile(r"#[^\n\r]*")
_GRAPHQL_OPERATION = re.compile(r"\s*(?:(query|mutation|subscription)\b|(\{))")


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


class WritePacer(BaseThrottler):
    """githubkit throttler: content-creating requests run one at a time, ≥ ``interval`` apart.

    GitHub: "If you are making a large number of POST, PATCH, PUT, or DELETE requests
    for a single user or client ID, wait at least one second between each request."
    https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests
    Reads only share githubkit's usual concurrency cap.  ``blocked_until`` (epoch
    seconds) is set when GitHub answers with a rate limit, so that every request of the
    installation stops until then, not only the one that was refused.
    """

    def __init__(
        self, interval: float = 1.0, *, clock: Clock | None = None, max_concurrency: int = 100
    ) -> None:
        self.interval = interval
        self.clock = clock or Clock()
        self.blocked_until = 0.0
        self._reads = LocalThrottler(max_concurrency)
        self._async_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._lock = threading.Lock()
        self._next_at = float("-inf")  # monotonic time before which no write may start

    def block_until(self, epoch: float) -> None:
        self.blocked_until = max(self.blocked_until, epoch)

    def _writes_lock(self) -> asyncio.Lock:
        # One lock per event loop: a client may outlive the loop it was first used in.
        loop = asyncio.get_running_loop()
        if self._async_lock is None or self._async_lock[0] is not loop:
            self._async_lock = (loop, asyncio.Lock())
        return self._async_lock[1]

    @contextlib.contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        if not is_write(request):
            with self._reads.acquire(request):
                yield
            return
        with self._lock:
            delay = self._next_at - self.clock.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                yield
            finally:
                self._next_at = self.clock.monotonic() + self.interval

    @contextlib.asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        if not is_write(request):
            async with self._reads.async_acquire(request):
                yield
            return
        async with self._writes_lock():
            delay = self._next_at - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            try:
                yield
            finally:
                self._next_at = self.clock.monotonic() + self.interval


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
        self, status: int, headers: httpx.Headers, message: str, now: float
    ) -> float | None:
        """Seconds GitHub asks us to wait, or None when the answer is not a rate limit.

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

    def graphql_rate_limit_delay(self, headers: httpx.Headers, now: float) -> float:
        """Seconds to wait after a GraphQL answer whose ``errors`` say RATE_LIMITED.

        GraphQL answers a rate limit with status 200: wait for ``retry-after``, else
        until ``x-ratelimit-reset`` when nothing remains, else at least a minute.
        https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit
        """
        asked = self._asked_wait(headers, now)
        return self.rate_limit_wait if asked is None else asked

    def _asked_wait(self, headers: httpx.Headers, now: float) -> float | None:
        if "retry-after" in headers:
            return _retry_after_seconds(headers["retry-after"], now, self.rate_limit_wait)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            try:
                return max(float(headers["x-ratelimit-reset"]) - now, 0.0) + 1.0
            except ValueError:
                return self.rate_limit_wait
        return None


def _retry_after_seconds(value: str, now: float, default: float) -> float:
    """``Retry-After`` is seconds, or (from proxies) an HTTP date."""
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return default


# ------------------------------------------------------------------------ clients


def _client_config(
    api_url: str,
    *,
    pacer: WritePacer,
    cache: BaseCacheStrategy,
    async_transport: httpx.AsyncBaseTransport | None,
) -> Config:
    return get_config(
        base_url=api_url,  # githubkit appends the "/" that GHES's ".../api/v3" lacks
        user_agent=USER_AGENT,
        timeout=httpx.Timeout(30.0, connect=10.0),  # githubkit's default is no timeout
        ssl_verify=shared_ssl_context(),
        async_transport=async_transport,
        cache_strategy=cache,
        http_cache=False,  # each PR is read once per push: conditional requests buy nothing
        throttler=pacer,
        auto_retry=False,  # PullRequestAPI retries, with a cap and an injectable clock
    )


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every GitHub client of the process.

    httpx builds a new one for each client it creates unless it is given one, and that
    loads the whole CA bundle (``load_verify_locations``, ~40 ms).  Same CA choice as
    httpx: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else certifi.
    """
    return httpx.create_ssl_context(trust_env=True)


def _check_private_key(pem: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        # Never echo the key, not even a part of it.
        raise ValueError("the GitHub App private key is not a PEM private key") from None


def make_app_github(
    settings: Settings,
    *,
    async_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> GitHub[AppAuthStrategy]:
    """A githubkit client authenticated as the App (JWT), for ``settings.github_api_url``.

    Raises:
        ValueError: the App id or private key is missing, or the key is not a PEM key.
    """
    pem = settings.private_key_pem()
    if settings.github_app_id is None or not pem:
        raise ValueError(
            "GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) must be set"
        )
    _check_private_key(pem)
    config = _client_config(
        settings.github_api_url,
        pacer=WritePacer(clock=clock),
        cache=MemCacheStrategy(),
        async_transport=async_transport,
    )
    return GitHub(AppAuthStrategy(settings.github_app_id, pem), config=config)


class PooledGitHub(GitHub[Any]):
    """A githubkit client whose requests share one ``httpx.AsyncClient`` while it is held.

    githubkit opens (and closes) a new httpx client for every request unless the caller
    is inside ``async with github:``, and that client lives in a ContextVar of the task
    that entered it: no help for the jobs an installation runs in other tasks.  Here,
    while at least one holder is inside :meth:`pooled` (a job: ``async with api:``),
    every request of this installation goes through one client: one connection pool,
    one auth flow, no per-request set-up.  The last holder to leave closes it, so
    nothing stays open between jobs (httpx drops idle connections after 5 s anyway) and
    no shutdown hook is needed; :meth:`aclose` closes it early (the installation was
    deleted).  Outside :meth:`pooled` requests behave as githubkit's do.
    """

    def __init__(self, auth: Any, *, config: Config) -> None:
        super().__init__(auth, config=config)
        self.clients_created = 0  # httpx clients built for this installation
        self.app_login: str | None = None  # the App's bot user, once read (GET /app)
        self._shared: httpx.AsyncClient | None = None
        self._shared_loop: asyncio.AbstractEventLoop | None = None
        self._holders = 0

    @property
    def shared_client(self) -> httpx.AsyncClient | None:
        """The client requests go through now, or None (one per request)."""
        shared = self._shared
        return None if shared is None or shared.is_closed else shared

    async def _create_async_client(self) -> httpx.AsyncClient:
        self.clients_created += 1
        return await super()._create_async_client()

    @contextlib.asynccontextmanager
    async def get_async_client(self) -> AsyncGenerator[httpx.AsyncClient, None]:
        shared = self.shared_client
        # An httpx client's connections belong to the event loop that opened them.
        if shared is not None and self._shared_loop is asyncio.get_running_loop():
            yield shared
            return
        async with super().get_async_client() as client:
            yield client

    @contextlib.asynccontextmanager
    async def pooled(self) -> AsyncGenerator[PooledGitHub, None]:
        """Hold the shared client (opening it if needed) for the duration of the block."""
        self._holders += 1
        try:
            if self.shared_client is None:
                self._shared = await self._create_async_client()
                self._shared_loop = asyncio.get_running_loop()
            yield self
        finally:
            self._holders -= 1
            if self._holders == 0:
                await self.aclose()

    async def aclose(self) -> None:
        """Close the shared client now; later requests open their own until re-pooled."""
        shared, self._shared, self._shared_loop = self._shared, None, None
        if shared is not None and not shared.is_closed:
            await shared.aclose()


class InstallationClients:
    """One githubkit client per installation: its own token cache, write pacer and pool.

    githubkit issues and caches the installation token (until a minute before it
    expires); keeping the client keeps the token.  Call :meth:`forget` when the
    installation is deleted or suspended: it drops the token and closes the
    installation's HTTP client.
    """

    def __init__(
        self,
        app: GitHub[AppAuthStrategy],
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        write_interval: float = 1.0,
        cache_factory: Callable[[], BaseCacheStrategy] = MemCacheStrategy,
    ) -> None:
        if not isinstance(app.auth, AppAuthStrategy):
            raise TypeError("InstallationClients needs a client made by make_app_github")
        self.app = app
        self.clock = clock or Clock()
        self.retry = retry or RetryPolicy()
        self._write_interval = write_interval
        self._cache_factory = cache_factory
        self._clients: dict[int, PooledGitHub] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def client(self, installation_id: int) -> PooledGitHub:
        """The installation's client (created on first use)."""
        found = self._clients.get(installation_id)
        if found is None:
            config = dataclasses.replace(
                self.app.config,
                throttler=WritePacer(self._write_interval, clock=self.clock),
                cache_strategy=self._cache_factory(),
            )
            auth = self.app.auth.as_installation(installation_id)
            found = self._clients[installation_id] = PooledGitHub(auth, config=config)
        return found

    def api(self, installation_id: int, owner: str, repo: str) -> PullRequestAPI:
        """A :class:`PullRequestAPI` for one repository of the installation.

        Use it as ``async with api:`` so that its requests share one HTTP client.
        """
        return PullRequestAPI(
            self.client(installation_id), owner, repo, clock=self.clock, retry=self.retry
        )

    def forget(self, installation_id: int) -> None:
        """Drop the installation's client, its cached token, and close its HTTP client.

        Called from the webhook handler (synchronous, inside the event loop): the close
        is scheduled on the running loop.
        """
        client = self._clients.pop(installation_id, None)
        if client is None or client.shared_client is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nobody can be holding the client (it needs one)
            return
        task = loop.create_task(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every installation's HTTP client (at shutdown; tokens stay cached)."""
        await asyncio.gather(*(c.aclose() for c in self._clients.values()), *self._closing)

    def __contains__(self, installation_id: object) -> bool:
        return installation_id in self._clients

    def __len__(self) -> int:
        return len(self._clients)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PullInfo:
    """What a run needs to know about a pull request."""

    number: int
    state: str  # "open" | "closed"
    draft: bool
    head_sha: str
    base_sha: str
    base_ref: str
    head_ref: str
    head_repo_full_name: str | None  # None when the fork was deleted
    base_repo_full_name: str
    author_login: str
    title: str
    changed_files: int = 0

    @property
    def is_fork(self) -> bool:
        return self.head_repo_full_name != self.base_repo_full_name


@dataclass(frozen=True)
class FileEntry:
    """One entry of ``GET /repos/{owner}/{repo}/pulls/{n}/files``."""

    filename: str
    status: str
    patch: str | None  # None for binary files and diffs too large to show
    previous_filename: str | None
    sha: str | None  # blob sha of the head version
    additions: int = 0
    deletions: int = 0


@dataclass(frozen=True)
class PullChanges:
    """A PR's changed files with head contents, ready for :func:`bot.pipeline.run`."""

    pull: PullInfo
    changes: list[FileChange]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewComment:
    """One comment of a review, on RIGHT-side lines ``start_line``..``line`` of ``path``."""

    path: str
    body: str
    line: int
    start_line: int | None = None

    @classmethod
    def from_suggestion(cls, suggestion: Suggestion, body: str) -> ReviewComment:
        start = suggestion.start if suggestion.start < suggestion.end else None
        return cls(suggestion.path, body, suggestion.end, start)

    def payload(self) -> dict[str, Any]:
        """The comment as ``POST …/reviews`` takes it.

        ``start_line``/``start_side`` only for a multi-line comment:
        https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request
        """
        out: dict[str, Any] = {
            "path": self.path,
            "body": self.body,
            "line": self.line,
            "side": "RIGHT",
        }
        if self.start_line is not None and self.start_line < self.line:
            out["start_line"] = self.start_line
            out["start_side"] = "RIGHT"
        return out


@dataclass
class ReviewResult:
    """What :meth:`PullRequestAPI.create_review` posted and what GitHub refused (and why)."""

    posted: list[ReviewComment] = field(default_factory=list)
    rejected: list[tuple[ReviewComment, str]] = field(default_factory=list)
    review_ids: list[int] = field(default_factory=list)

    @property
    def review_id(self) -> int | None:
        """The first review posted (more than one only when GitHub refused a batch)."""
        return self.review_ids[0] if self.review_ids else None


@dataclass(frozen=True)
class CheckRunAction:
    """A button on the check run page; clicking it sends ``check_run.requested_action``.

    https://docs.github.com/en/rest/guides/using-the-rest-api-to-interact-with-checks#check-runs-and-requested-actions
    """

    label: str  # at most 20 characters
    description: str  # at most 40
    identifier: str  # at most 20

    def __post_init__(self) -> None:
        for name, limit in (("label", 20), ("description", 40), ("identifier", 20)):
            value = getattr(self, name)
            if not value or len(value) > limit:
                raise ValueError(f"check run action {name} must be 1-{limit} characters")

    def payload(self) -> dict[str, str]:
        return {"label": self.label, "description": self.description, "identifier": self.identifier}


# The identifier is what bot.events matches in check_run.requested_action.
GENERATE_ACTION = CheckRunAction(
    "Generate docstrings", "Suggest docstrings for this PR", "generate"
)


# ------------------------------------------------------------------- payloads (pure)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cap(text: str, limit: int = OUTPUT_TEXT_LIMIT) -> str:
    return render.cap_bytes(text, limit, _TRUNCATED)


def review_body(count: int) -> str:
    """The text of a review that carries ``count`` suggestion comments."""
    what = "a docstring" if count == 1 else f"{count} docstrings"
    return f"📝 docgen suggests {what}. Commit the suggestions you want to keep."


def review_payload(
    commit_id: str, comments: Sequence[ReviewComment], body: str | None = None
) -> dict[str, Any]:
    """``POST /repos/{owner}/{repo}/pulls/{n}/reviews``: one submitted COMMENT review.

    Always with ``event``: a review created without one stays PENDING, visible only to
    us.  https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request
    """
    return {
        "commit_id": commit_id,
        "event": "COMMENT",
        "body": body if body is not None else review_body(len(comments)),
        "comments": [c.payload() for c in comments],
    }


def check_run_create_payload(
    head_sha: str,
    *,
    external_id: str,
    started_at: str,
    details_url: str | None = None,
    actions: Sequence[CheckRunAction] = (),
) -> dict[str, Any]:
    """``POST /repos/{owner}/{repo}/check-runs``: the ``docgen`` run, in progress.

    https://docs.github.com/en/rest/checks/runs#create-a-check-run
    """
    payload: dict[str, Any] = {
        "name": CHECK_NAME,
        "head_sha": head_sha,
        "status": "in_progress",
        "started_at": started_at,
        "external_id": external_id,
        "output": {
            "title": "docgen is writing docstrings",
            "summary": "Reading the changed files of this pull request…",
        },
    }
    if details_url:
        payload["details_url"] = details_url
    if actions:
        payload["actions"] = _actions(actions)
    return payload


def _actions(actions: Sequence[CheckRunAction]) -> list[dict[str, str]]:
    if len(actions) > MAX_ACTIONS:
        raise ValueError(f"a check run takes at most {MAX_ACTIONS} actions")
    return [a.payload() for a in actions]


def check_run_output(
    title: str,
    summary: str,
    annotations: Sequence[dict[str, Any]] = (),
    text: str | None = None,
) -> dict[str, Any]:
    """A check run's ``output``, with summary and text cut to GitHub's 65,535 bytes.

    ``annotations`` must already be one request's worth (≤ 50).
    """
    if len(annotations) > MAX_ANNOTATIONS_PER_REQUEST:
        raise ValueError(f"at most {MAX_ANNOTATIONS_PER_REQUEST} annotations per request")
    output: dict[str, Any] = {"title": title, "summary": _cap(summary)}
    if text is not None:
        output["text"] = _cap(text)
    if annotations:
        output["annotations"] = list(annotations)
    return output


def check_run_update_payloads(
    *,
    conclusion: Conclusion,
    title: str,
    summary: str,
    annotations: Sequence[dict[str, Any]] = (),
    text: str | None = None,
    completed_at: str,
    details_url: str | None = None,
    actions: Sequence[CheckRunAction] = (),
) -> list[dict[str, Any]]:
    """The ``PATCH /repos/{owner}/{repo}/check-runs/{id}`` bodies that complete a run.

    GitHub takes at most 50 annotations per request and appends those of each update
    (https://docs.github.com/en/rest/checks/runs#update-a-check-run): the first body
    completes the run with the first 50, each further body adds the next 50.
    """
    if conclusion == "action_required" and not details_url:
        raise ValueError("GitHub requires details_url with the action_required conclusion")
    chunks = [
        list(annotations[i : i + MAX_ANNOTATIONS_PER_REQUEST])
        for i in range(0, len(annotations), MAX_ANNOTATIONS_PER_REQUEST)
    ] or [[]]
    first: dict[str, Any] = {
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": completed_at,
        "output": check_run_output(title, summary, chunks[0], text),
    }
    if details_url:
        first["details_url"] = details_url
    if actions:
        first["actions"] = _actions(actions)
    return [first] + [
        {"output": check_run_output(title, summary, chunk, text)} for chunk in chunks[1:]
    ]


# ---------------------------------------------------------------------- parsing


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_own_comment(comment: dict[str, Any], app_login: str) -> bool:
    """Whether a review comment was written by the App (its bot user ``app_login``).

    A review comment names its author in ``user`` (``login``, ``type``); an App's bot
    user is ``<slug>[bot]`` of type ``Bot``, a login no person can take.
    https://docs.github.com/en/rest/pulls/comments#list-review-comments-on-a-pull-request
    """
    user = _obj(comment.get("user"))
    return user.get("type") == "Bot" and str(user.get("login") or "").lower() == app_login.lower()


def _pull_info(data: dict[str, Any]) -> PullInfo:
    head, base = _obj(data.get("head")), _obj(data.get("base"))
    return PullInfo(
        number=int(data["number"]),
        state=str(data.get("state", "open")),
        draft=bool(data.get("draft", False)),
        head_sha=str(head["sha"]),
        base_sha=str(base["sha"]),
        base_ref=str(base.get("ref", "")),
        head_ref=str(head.get("ref", "")),
        head_repo_full_name=_obj(head.get("repo")).get("full_name"),
        base_repo_full_name=str(_obj(base.get("repo")).get("full_name", "")),
        author_login=str(_obj(data.get("user")).get("login", "")),
        title=str(data.get("title", "")),
        changed_files=int(data.get("changed_files") or 0),
    )


def _file_entry(data: dict[str, Any]) -> FileEntry:
    return FileEntry(
        filename=str(data["filename"]),
        status=str(data.get("status", "modified")),
        patch=data.get("patch"),
        previous_filename=data.get("previous_filename"),
        sha=data.get("sha"),
        additions=int(data.get("additions") or 0),
        deletions=int(data.get("deletions") or 0),
    )


def _id(data: dict[str, Any]) -> int:
    return int(data["id"])


_T = TypeVar("_T")


def _parsed(parse: Callable[[dict[str, Any]], _T], source: Any, route: str) -> _T:
    """``parse`` applied to a response's JSON object; a malformed answer is a GitHubError."""
    data = source.json() if isinstance(source, Response) else source
    try:
        return parse(_obj(data))
    except (KeyError, TypeError, ValueError):
        raise GitHubError(f"{route}: unexpected answer from GitHub", route=route) from None


def _decode(content: str, encoding: str | None) -> bytes | None:
    if encoding == "base64":
        try:
            return base64.b64decode(content)  # wrapped at 60 columns: newlines are skipped
        except binascii.Error:
            return None
    if encoding in ("utf-8", "utf8"):
        return content.encode("utf-8")
    return None


def _error_details(response: httpx.Response) -> tuple[str, list[str]]:
    """GitHub's ``message`` and ``errors`` (strings or objects) from an error answer."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "error", []
    data = _obj(data)
    message = str(data.get("message") or response.reason_phrase or "error")
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


_ERRORS: dict[int, type[GitHubError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: Unprocessable,
}


# ---------------------------------------------------------------------- GraphQL


def graphql_url(api_url: httpx.URL | str) -> str:
    """GitHub's GraphQL endpoint beside a REST base URL.

    github.com: ``https://api.github.com`` → ``https://api.github.com/graphql``;
    GitHub Enterprise Server: ``https://HOST/api/v3`` → ``https://HOST/api/graphql``.
    https://docs.github.com/en/enterprise-server@latest/graphql/guides/forming-calls-with-graphql#the-graphql-endpoint
    """
    url = httpx.URL(str(api_url))
    path = url.path.rstrip("/")
    path = path.removesuffix("/v3") + "/graphql" if path.endswith("/api/v3") else path + "/graphql"
    return str(url.copy_with(path=path, query=None))


_BLOB_FIELDS = "oid byteSize isBinary isTruncated text"


@functools.cache
def _objects_document(
    operation: str, argument: str, prefix: str, kind: str, selection: str, count: int
) -> str:
    """A query reading ``count`` objects of one repository, alias ``f<i>`` for the
    ``i``-th, each looked up by ``object(<argument>: $<prefix><i>)`` of GraphQL type
    ``kind`` and read as a Blob's ``selection``."""
    variables = "".join(f", ${prefix}{i}: {kind}" for i in range(count))
    fields = "".join(
        f"\n    f{i}: object({argument}: ${prefix}{i}) {{ ... on Blob {{ {selection} }} }}"
        for i in range(count)
    )
    return (
        f"query {operation}($owner: String!, $name: String!{variables}) {{"
        f"\n  repository(owner: $owner, name: $name) {{{fields}\n  }}\n}}"
    )


def head_blobs_query(
    owner: str, repo: str, sha: str, paths: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """The GraphQL query (and its variables) reading ``paths`` at commit ``sha``.

    Alias ``f<i>`` answers for ``paths[i]``; the expressions ``<sha>:<path>`` are
    variables ``$e<i>``, so a path is never part of the query's text.
    https://docs.github.com/en/graphql/reference/objects#repository (``object``)
    """
    variables: dict[str, Any] = {"owner": owner, "name": repo}
    variables.update({f"e{i}": f"{sha}:{path}" for i, path in enumerate(paths)})
    document = _objects_document(
        "DocgenHeadBlobs", "expression", "e", "String!", _BLOB_FIELDS, len(paths)
    )
    return document, variables


_SIZE_FIELDS = "byteSize"


def blob_sizes_query(owner: str, repo: str, shas: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The GraphQL query (and its variables) reading the size of the blobs ``shas``.

    Alias ``f<i>`` answers for ``shas[i]``: ``byteSize`` only, never the text, so a
    file is measured before a byte of it is downloaded.  By blob id (the PR's file
    list names each head blob), so the size is that of the bytes the patch describes.
    https://docs.github.com/en/graphql/reference/objects#repository (``object(oid:)``)
    """
    variables: dict[str, Any] = {"owner": owner, "name": repo}
    variables.update({f"o{i}": sha for i, sha in enumerate(shas)})
    document = _objects_document(
        "DocgenBlobSizes", "oid", "o", "GitObjectID!", _SIZE_FIELDS, len(shas)
    )
    return document, variables


@dataclass(frozen=True)
class FetchLimits:
    """How much of a PR's head one run may download.

    ``max_file_bytes``: a file over it is not downloaded (``max_file_bytes`` in
    ``.github/docgen.yml``); ``max_run_bytes``: all the files of one run together
    (``DOCGEN_MAX_RUN_BYTES``).  None: no limit.
    """

    max_file_bytes: int | None = None
    max_run_bytes: int | None = None


@dataclass(frozen=True)
class HeadContents:
    """What :meth:`PullRequestAPI.head_contents` read.

    ``contents``: path → bytes (None: no content to review); ``skipped``: path → why
    its content was not downloaded (its size against a limit); ``bytes_read``: the
    bytes of content downloaded.
    """

    contents: dict[str, bytes | None]
    skipped: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0


@dataclass(frozen=True)
class _Size:
    """A blob's size as GitHub reports it, before anything of it is downloaded."""

    bytes: int
    sha: str | None  # the blob to read through REST (None: the PR's list named none)


def too_large(size: int, limit: int) -> str:
    """The skip reason of a file over ``max_file_bytes`` (as bot.extract words it)."""
    return f"too large: {size:,} bytes > limit {limit:,} (max_file_bytes); not downloaded"


def over_run_cap(size: int, cap: int) -> str:
    return (
        f"not downloaded: its {size:,} bytes would take the run past its {cap:,}-byte"
        " download cap (DOCGEN_MAX_RUN_BYTES)"
    )


class _ViaRest:
    """GraphQL's answer for a file is not its bytes: read it through REST."""


_VIA_REST = _ViaRest()


def _worth_reading(entry: FileEntry, wanted: Callable[[str], bool] | None) -> bool:
    """Whether the pipeline will look at ``entry``'s content at all.

    Not a removed file, nor one without a patch (binary, or a diff too large to show:
    the pipeline reports it from the list entry alone), nor one the config leaves out.
    """
    if entry.status == "removed" or entry.patch is None:
        return False
    return wanted is None or wanted(entry.filename)


def _blob_content(node: Any, entry: FileEntry) -> bytes | _ViaRest | None:
    """What one GraphQL ``Blob`` gives for ``entry``: its bytes, None, or ``_VIA_REST``.

    Only text GitHub sent whole, of exactly ``byteSize`` bytes once encoded as UTF-8,
    is the file: anything else goes to REST, which gives the raw bytes that the
    pipeline turns into a skip with its reason (binary, not UTF-8, too large).
    """
    if not isinstance(node, dict) or "isBinary" not in node:
        return _VIA_REST  # null: missing at that commit, or an error for this alias; a tree
    if entry.sha and node.get("oid") not in (None, entry.sha):
        return _VIA_REST  # not the blob the PR's file list names
    if node.get("isBinary"):
        return _VIA_REST  # GitHub showed a patch (files without one are not read)
    text = node.get("text")
    if not isinstance(text, str) or node.get("isTruncated"):
        return _VIA_REST
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: GitHub's rendering, not the bytes
        return _VIA_REST
    return data if len(data) == node.get("byteSize") else _VIA_REST


# GraphQL's own error types; a rate limit is RATE_LIMITED, or RATE_LIMIT in newer answers
# (https://github.com/yanyongyu/githubkit/issues/271).
_GRAPHQL_RATE_LIMITS = frozenset({"RATE_LIMITED", "RATE_LIMIT"})
_GRAPHQL_ERRORS: dict[str, type[GitHubError]] = {"NOT_FOUND": NotFound, "FORBIDDEN": Forbidden}


def _graphql_rate_limited(response: Response[Any]) -> str | None:
    """GitHub's message when a GraphQL answer (status 200) is a rate limit, else None.

    https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit
    """
    try:
        parsed: GraphQLResponse = response.parsed_data  # parsed once, kept by the response
    except ValueError:  # not a GraphQL answer: the caller says so
        return None
    for error in parsed.errors or []:
        if error.type in _GRAPHQL_RATE_LIMITS or "secondary rate limit" in error.message:
            return error.message or "rate limited"
    return None


# --------------------------------------------------------------------------- API

_Call = Callable[[], Awaitable[Response[Any]]]


class PullRequestAPI:
    """GitHub calls for one repository, through one installation's client.

    ``calls`` counts the requests sent per route template (retries included), and
    ``last_rate_limit_remaining`` is the last ``x-ratelimit-remaining`` GitHub sent.
    """

    def __init__(
        self,
        client: GitHub[Any],
        owner: str,
        repo: str,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._gh = _prepared(client, clock)
        pacer = self._gh.config.throttler
        assert isinstance(pacer, WritePacer)
        self.pacer = pacer
        self.clock = clock or pacer.clock
        self.retry = retry or RetryPolicy()
        self.owner = owner
        self.repo = repo
        self.calls: Counter[str] = Counter()
        self.last_rate_limit_remaining: int | None = None
        self.waited = 0.0  # seconds spent waiting for rate limits and backoff
        self.graphql_url = graphql_url(self._gh.config.base_url)
        self._headers = {"X-GitHub-Api-Version": API_VERSION}
        self._held: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"PullRequestAPI({self.owner}/{self.repo})"

    async def __aenter__(self) -> PullRequestAPI:
        """Send this API's requests through one HTTP client until the block ends."""
        if self._held is not None:
            raise RuntimeError("PullRequestAPI is already entered")
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(self._gh.pooled())
        self._held = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._held = self._held, None
        if stack is not None:
            await stack.aclose()

    # ----------------------------------------------------------------- plumbing

    async def _send(
        self,
        method: str,
        route: str,
        call: _Call,
        *,
        already_done: Callable[[], Awaitable[bool]] | None = None,
        graphql: bool = False,
    ) -> Response[Any] | None:
        """Send one request, waiting out rate limits and retrying 5xx within the policy.

        ``already_done`` is asked before a non-idempotent request is re-sent after a
        5xx or a network error (GitHub may have acted before failing); when it says
        yes, nothing is re-sent and None is returned.  With ``graphql``, a 200 answer
        whose ``errors`` say RATE_LIMITED is a rate limit like a REST 403.
        """
        label = f"{method} {route}"
        attempt = 0
        waited = 0.0
        refreshed = False
        while True:
            block = self.pacer.blocked_until - self.clock.time()
            if block > 0:
                if waited + block > self.retry.max_wait:
                    raise GitHubUnavailable(
                        f"{label}: rate limited by GitHub until {_iso(self.pacer.blocked_until)}",
                        retry_at=self.pacer.blocked_until,
                        route=label,
                    )
                await self._wait(block)
                waited += block
            self.calls[label] += 1
            failed: httpx.Response | None = None
            graphql_limit: str | None = None
            try:
                response = await call()
            except RequestFailed as exc:
                failed = exc.response.raw_response
            except RequestError as exc:
                inner = exc.exc
                if isinstance(inner, RequestFailed):  # the token request, inside the auth flow
                    failed = inner.response.raw_response
                elif isinstance(inner, httpx.TransportError):
                    problem = f"network error ({type(inner).__name__})"
                else:
                    raise GitHubError(f"{label}: {type(inner).__name__}", route=label) from None
            else:
                self._note(response.headers)
                graphql_limit = _graphql_rate_limited(response) if graphql else None
                if graphql_limit is None:
                    return response

            now = self.clock.time()
            status: int | None = None
            limited = False
            if graphql_limit is not None:
                status = response.status_code
                problem = f"{status} {graphql_limit}"
                delay, limited = self.retry.graphql_rate_limit_delay(response.headers, now), True
                self.pacer.block_until(now + delay)
            elif failed is None:
                delay = self.retry.backoff_delay(attempt)
            else:
                self._note(failed.headers)
                status = failed.status_code
                message, errors = _error_details(failed)
                problem = f"{status} {message}"
                rate_delay = self.retry.rate_limit_delay(
                    status, failed.headers, " ".join([message, *errors]), now
                )
                if rate_delay is not None:
                    delay, limited = rate_delay, True
                    # Every request of this installation waits, not only this one.
                    self.pacer.block_until(now + delay)
                elif status >= 500:
                    delay = self.retry.backoff_delay(attempt)
                elif status == 401 and not refreshed and self._forget_credentials():
                    # A cached token GitHub no longer accepts (revoked, or our clock is
                    # off): githubkit would keep sending it until it expires.
                    refreshed = True
                    continue
                else:
                    error = _ERRORS.get(status, GitHubError)
                    text = f"{label}: {problem}" + (f" ({'; '.join(errors)})" if errors else "")
                    raise error(text, status=status, route=label, errors=errors) from None

            if attempt >= self.retry.max_retries or waited + delay > self.retry.max_wait:
                raise GitHubUnavailable(
                    f"{label}: {problem}; giving up after {attempt + 1} attempt(s)",
                    retry_at=now + delay,
                    status=status,
                    route=label,
                ) from None
            log.warning("GitHub %s: %s; retrying in %.1f s", label, problem, delay)
            attempt += 1
            if limited:
                continue  # the top of the loop waits until blocked_until
            await self._wait(delay)
            waited += delay
            if method == "POST" and already_done is not None and await already_done():
                log.info("GitHub %s had succeeded before failing; not re-sent", label)
                return None

    def _forget_credentials(self) -> bool:
        """Drop the client's cached JWT and installation token; False if we cannot."""
        strategy = self._gh.config.cache_strategy
        if not isinstance(strategy, MemCacheStrategy):
            return False
        strategy.cleanup()
        return True

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self.clock.sleep(seconds)

    def _note(self, headers: httpx.Headers) -> None:
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.last_rate_limit_remaining = int(remaining)

    async def _get(self, route: str, call: _Call) -> Response[Any]:
        response = await self._send("GET", route, call)
        assert response is not None  # only POSTs with already_done may return None
        return response

    async def _paginate(self, route: str, call: _Call, *, max_items: int) -> list[Any]:
        """Every item of a list endpoint, following ``Link: <…>; rel="next"``.

        https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
        """
        items: list[Any] = []
        response = await self._get(route, call)
        while True:
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GET {route}: expected a JSON list", route=route)
            items.extend(page)
            next_url = self._next_page(response)
            if next_url is None or len(items) >= max_items:
                return items[:max_items]
            response = await self._get(
                route, lambda url=next_url: self._gh.arequest("GET", url, headers=self._headers)
            )

    def _next_page(self, response: Response[Any]) -> httpx.URL | None:
        match = _NEXT_LINK.search(response.headers.get("link", ""))
        if match is None:
            return None
        url = httpx.URL(match[1])
        base = self._gh.config.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            # Never send the installation token to another host.
            raise GitHubError(f"pagination link points away from {base.host}")
        return url

    # -------------------------------------------------------------------- reads

    async def get_pull(self, number: int) -> PullInfo:
        """``GET /repos/{owner}/{repo}/pulls/{n}``."""
        response = await self._get(
            "/repos/{owner}/{repo}/pulls/{pull_number}",
            lambda: self._gh.rest.pulls.async_get(
                self.owner, self.repo, number, headers=self._headers
            ),
        )
        return _parsed(_pull_info, response, "GET /repos/{owner}/{repo}/pulls/{pull_number}")

    async def list_files(self, number: int) -> list[FileEntry]:
        """The PR's changed files, 100 per page.

        GitHub lists at most 3,000 files of a PR
        (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files): compare
        with :attr:`PullInfo.changed_files` to know whether the list is complete.
        """
        items = await self._paginate(
            "/repos/{owner}/{repo}/pulls/{pull_number}/files",
            lambda: self._gh.rest.pulls.async_list_files(
                self.owner, self.repo, number, per_page=PER_PAGE, headers=self._headers
            ),
            max_items=MAX_PR_FILES,
        )
        route = "GET /repos/{owner}/{repo}/pulls/{pull_number}/files"
        return [_parsed(_file_entry, item, route) for item in items if isinstance(item, dict)]

    async def get_file(self, path: str, ref: str | None) -> bytes | None:
        """A file's bytes at ``ref`` (None: the default branch); None when it is not a file.

        Files over 1 MB come back from the contents API without content; those are
        read from ``git/blobs/{sha}`` (up to 100 MB).
        """
        return await self._contents(self.owner, self.repo, path, ref)

    async def _contents(self, owner: str, repo: str, path: str, ref: str | None) -> bytes | None:
        if "?" in path or "#" in path:
            return await self._contents_via_parent(owner, repo, path, ref)
        data = await self._contents_json(owner, repo, path, ref)
        if data is None or data.get("type") != "file":
            return None  # a directory, submodule or symlink out of the repository
        content = str(data.get("content") or "")
        if content or not data.get("size"):
            decoded = _decode(content, data.get("encoding"))
            if decoded is not None:
                return decoded
        sha = data.get("sha")
        return await self._blob(owner, repo, str(sha)) if sha else None

    async def _contents_json(
        self, owner: str, repo: str, path: str, ref: str | None
    ) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {} if ref is None else {"ref": ref}
        try:
            response = await self._get(
                "/repos/{owner}/{repo}/contents/{path}",
                lambda: self._gh.rest.repos.async_get_content(
                    owner,
                    repo,
                    quote(path, safe="/"),
                    headers={**self._headers, "Accept": _OBJECT_MEDIA},
                    **kwargs,
                ),
            )
        except NotFound:
            return None
        return _obj(response.json())

    async def _contents_via_parent(
        self, owner: str, repo: str, path: str, ref: str | None
    ) -> bytes | None:
        """Read a file whose name holds ``?`` or ``#`` through its directory's listing.

        githubkit's App auth re-parses the decoded request path, which fails on those
        two characters; the listing gives the blob sha without putting the name in a URL.
        """
        parent, _, name = path.rpartition("/")
        if "?" in parent or "#" in parent:
            raise GitHubError(f"cannot read {path!r}: '?' or '#' in a directory name")
        listing = await self._contents_json(owner, repo, parent, ref)
        for entry in (listing or {}).get("entries") or []:
            entry = _obj(entry)
            if entry.get("name") == name and entry.get("type") == "file" and entry.get("sha"):
                return await self._blob(owner, repo, str(entry["sha"]))
        return None

    async def get_blob(self, sha: str) -> bytes | None:
        """``GET /repos/{owner}/{repo}/git/blobs/{sha}``; None when there is no such blob."""
        return await self._blob(self.owner, self.repo, sha)

    async def _blob(self, owner: str, repo: str, sha: str) -> bytes | None:
        try:
            response = await self._get(
                "/repos/{owner}/{repo}/git/blobs/{file_sha}",
                lambda: self._gh.rest.git.async_get_blob(owner, repo, sha, headers=self._headers),
            )
        except NotFound:
            return None
        data = _obj(response.json())
        return _decode(str(data.get("content") or ""), data.get("encoding"))

    async def get_config(self, org: str | None) -> tuple[bytes | None, str]:
        """The ``docgen.yml`` that applies to this repository's PRs, and where it was found.

        Read from the repository's *default branch* (the contents API without ``ref``),
        never from the PR's base or head: the PR author chooses both (any branch can be
        a base), so neither may choose the budget, ``auto_run`` or what is excluded.
        Then the owner's ``.github`` repository (its default branch); else
        ``(None, "defaults")``.
        https://docs.github.com/en/rest/repos/contents#get-repository-content
        """
        for name in (".github/docgen.yml", ".github/docgen.yaml"):
            data = await self._contents(self.owner, self.repo, name, None)
            if data is not None:
                return data, name
        if org:
            for name in (".github/docgen.yml", "docgen.yml"):
                data = await self._contents(org, ".github", name, None)
                if data is not None:
                    return data, f"{org}/.github:{name}"
        return None, "defaults"

    async def app_login(self) -> str:
        """The login of the App's bot user, ``<slug>[bot]``: who authors its comments.

        ``GET /app`` with the App's JWT, once per installation client.
        https://docs.github.com/en/rest/apps/apps#get-the-authenticated-app
        """
        client = self._gh
        if isinstance(client, PooledGitHub) and client.app_login is not None:
            return client.app_login
        as_app = getattr(client.auth, "as_app", None)
        if as_app is None:
            raise GitHubError("not authenticated as a GitHub App: its own comments are unknown")
        app_client = client.with_auth(as_app())
        response = await self._get(
            "/app", lambda: app_client.rest.apps.async_get_authenticated(headers=self._headers)
        )
        slug = _obj(response.json()).get("slug")
        if not isinstance(slug, str) or not slug:
            raise GitHubError("GET /app: GitHub's answer names no slug", route="GET /app")
        login = f"{slug}[bot]"
        if isinstance(client, PooledGitHub):
            client.app_login = login
        return login

    async def existing_markers(self, number: int) -> set[tuple[str, str]]:
        """``(target_id, docstring_hash)`` of every docgen comment already on the PR.

        Only the App's own comments count: anyone can paste a marker into a comment of
        theirs, and a marker that counted would keep docgen from suggesting that
        docstring (:func:`is_own_comment`).
        """
        login = await self.app_login()
        comments = await self._paginate(
            "/repos/{owner}/{repo}/pulls/{pull_number}/comments",
            lambda: self._gh.rest.pulls.async_list_review_comments(
                self.owner, self.repo, number, per_page=PER_PAGE, headers=self._headers
            ),
            max_items=100_000,
        )
        found = set()
        for comment in map(_obj, comments):
            if not is_own_comment(comment, login):
                continue
            parsed = render.parse_marker(str(comment.get("body") or ""))
            if parsed is not None:
                found.add(parsed)
        return found

    async def fetch_changes(
        self,
        pull: PullInfo,
        *,
        wanted: Callable[[str], bool] | None = None,
        limits: FetchLimits | None = None,
    ) -> PullChanges:
        """The PR's changed files, with head contents of those the pipeline will review.

        ``pull`` is the PR as the caller already read it: its ``head_sha`` is the
        commit whose contents are read.  Files come from REST (100 per page, with their
        patches); contents (:meth:`head_contents`) only of files that have a patch, are
        not removed and are ``wanted`` (include/exclude): anything else is reported
        from its list entry alone, so a PR cannot make docgen download what it will not
        use.  ``limits`` caps the bytes read, per file and per run; a file left unread
        for its size carries the reason in ``FileChange.skip_reason``.
        """
        files = await self.list_files(pull.number)
        notes = []
        if len(files) < pull.changed_files:
            notes.append(
                f"GitHub lists only {len(files):,} of the {pull.changed_files:,} changed files;"
                " the others were not reviewed"
            )
        read = [f for f in files if _worth_reading(f, wanted)]
        heads = await self.head_contents(pull.head_sha, read, limits)
        changes = [
            FileChange(
                f.filename,
                f.status,
                f.patch,
                heads.contents.get(f.filename),
                f.previous_filename,
                heads.skipped.get(f.filename),
            )
            for f in files
        ]
        over = [p for p, why in heads.skipped.items() if "DOCGEN_MAX_RUN_BYTES" in why]
        if over and limits is not None and limits.max_run_bytes is not None:
            notes.append(
                f"This run read {heads.bytes_read:,} bytes of files, up to its"
                f" {limits.max_run_bytes:,}-byte cap (DOCGEN_MAX_RUN_BYTES); not reviewed: "
                + ", ".join(f"`{p}`" for p in over)
            )
        return PullChanges(pull, changes, notes)

    async def head_contents(
        self, head_sha: str, files: Sequence[FileEntry], limits: FetchLimits | None = None
    ) -> HeadContents:
        """The bytes of ``files`` at ``head_sha`` within ``limits``; sizes first.

        1. Sizes: one GraphQL query per 100 files asks ``object(oid:)`` of each blob the
           PR's list names for its ``byteSize`` only.  Where GraphQL gives
           nothing (an error, GraphQL unavailable), the size comes from the REST listing
           of the file's directory at ``head_sha`` (no content either).
        2. Files over ``max_file_bytes``, or that would take the run past
           ``max_run_bytes`` (in the list's order), are skipped with that reason:
           none of their bytes is downloaded.
        3. The rest is read (:meth:`_read_heads`): GraphQL ``text``, 100 files per
           query; REST blobs for what GraphQL cannot give exactly.
        https://docs.github.com/en/graphql/reference/objects#blob
        """
        limits = limits or FetchLimits()
        sizes, graphql_ok = await self._sizes(head_sha, files)
        contents: dict[str, bytes | None] = {}
        skipped: dict[str, str] = {}
        chosen: list[tuple[FileEntry, _Size]] = []
        planned = 0
        for entry in files:
            size = sizes.get(entry.filename)
            contents[entry.filename] = None
            if isinstance(size, str):
                skipped[entry.filename] = size
            elif size is None:
                continue  # GitHub has no such file at head: "file content unavailable"
            elif limits.max_file_bytes is not None and size.bytes > limits.max_file_bytes:
                skipped[entry.filename] = too_large(size.bytes, limits.max_file_bytes)
            elif limits.max_run_bytes is not None and planned + size.bytes > limits.max_run_bytes:
                skipped[entry.filename] = over_run_cap(size.bytes, limits.max_run_bytes)
            else:
                planned += size.bytes
                chosen.append((entry, size))
        read = await self._read_heads(head_sha, chosen, graphql=graphql_ok)
        contents.update(read)
        return HeadContents(contents, skipped, sum(len(v) for v in read.values() if v))

    async def _sizes(
        self, head_sha: str, files: Sequence[FileEntry]
    ) -> tuple[dict[str, _Size | str | None], bool]:
        """Each file's size (a reason instead when it cannot be read), and whether
        GraphQL answered."""
        sizes: dict[str, _Size | str | None] = {}
        unknown = [f for f in files if not f.sha]
        with_sha = [f for f in files if f.sha]
        graphql_ok = True
        for start in range(0, len(with_sha), GRAPHQL_BATCH):
            batch = with_sha[start : start + GRAPHQL_BATCH]
            query, variables = blob_sizes_query(self.owner, self.repo, [str(f.sha) for f in batch])
            nodes = await self._objects(query, variables)
            if nodes is None:
                graphql_ok = False
                unknown.extend(batch)
                continue
            for i, entry in enumerate(batch):
                node = nodes.get(f"f{i}")
                size = node.get("byteSize") if isinstance(node, dict) else None
                if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                    sizes[entry.filename] = _Size(size, entry.sha)
                else:
                    unknown.append(entry)  # null or an error: ask REST
        listings: dict[str, dict[str, Any]] = {}
        for entry in unknown:
            sizes[entry.filename] = await self._listed_size(head_sha, entry, listings)
        return sizes, graphql_ok

    async def _listed_size(
        self, head_sha: str, entry: FileEntry, listings: dict[str, dict[str, Any]]
    ) -> _Size | str | None:
        """A file's size from its directory's REST listing at ``head_sha`` (cached per
        directory); None when the directory has no such file.

        A listing gives each entry's ``size`` and ``sha`` without content, for up to
        1,000 entries: https://docs.github.com/en/rest/repos/contents#get-repository-content
        """
        parent, _, name = entry.filename.rpartition("/")
        if parent not in listings:
            listings[parent] = await self._listing(parent, head_sha)
        item = listings[parent].get(name)
        if not isinstance(item, dict) or item.get("type") != "file":
            if len(listings[parent]) >= 1_000:
                return "size unknown (GitHub lists 1,000 files of a directory); not downloaded"
            return None
        size, sha = item.get("size"), item.get("sha")
        if not isinstance(size, int) or not isinstance(sha, str):
            return None
        if entry.sha and sha != entry.sha:
            # A push between reading the PR and its files: this run's results are stale
            # (the push's own run supersedes it), and the listed size is not the blob's.
            return "changed on GitHub while this run read it (a newer push); not downloaded"
        return _Size(size, sha)

    async def _listing(self, directory: str, ref: str) -> dict[str, Any]:
        """``{name: entry}`` of a directory at ``ref`` (empty: no such directory)."""
        if "?" in directory or "#" in directory:
            return {}  # githubkit's App auth cannot route these (see _contents_via_parent)
        data = await self._contents_json(self.owner, self.repo, directory, ref)
        entries = (data or {}).get("entries")
        out: dict[str, Any] = {}
        for item in entries if isinstance(entries, list) else []:
            item = _obj(item)
            if isinstance(item.get("name"), str):
                out[item["name"]] = item
        return out

    async def _read_heads(
        self, head_sha: str, chosen: Sequence[tuple[FileEntry, _Size]], *, graphql: bool
    ) -> dict[str, bytes | None]:
        """The bytes of ``chosen`` files, whose sizes fit: GraphQL first, REST for the rest.

        One GraphQL query per 100 files reads each as
        ``object(expression: "<sha>:<path>") { ... on Blob { … } }`` (the expressions
        are variables: a path never becomes query text).  What GraphQL cannot give
        exactly — binary blobs, text it truncated, text that is not the file's bytes
        (not UTF-8), an alias it answered with null or an error — is read through REST
        (``git/blobs/{sha}``, the blob measured in step 1), one file at a time.
        """
        found: dict[str, bytes | None] = {}
        texts = list(chosen) if graphql else []
        rest: list[tuple[FileEntry, _Size]] = [] if graphql else list(chosen)
        for start in range(0, len(texts), GRAPHQL_BATCH):
            batch = texts[start : start + GRAPHQL_BATCH]
            nodes = await self._blobs(head_sha, [e.filename for e, _ in batch])
            if nodes is None:
                rest.extend(batch)
                continue
            for i, (entry, size) in enumerate(batch):
                content = _blob_content(nodes.get(f"f{i}"), entry)
                if isinstance(content, _ViaRest):
                    rest.append((entry, size))
                else:
                    found[entry.filename] = content
        for entry, size in rest:
            found[entry.filename] = await self.get_blob(size.sha) if size.sha else None
        return found

    async def _blobs(self, head_sha: str, paths: Sequence[str]) -> dict[str, Any] | None:
        """``{alias: node}`` for ``paths`` at ``head_sha`` (see :meth:`_objects`)."""
        query, variables = head_blobs_query(self.owner, self.repo, head_sha, paths)
        return await self._objects(query, variables)

    async def _objects(self, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """``{alias: node}`` of a query over ``repository`` (alias null or errored → None).

        None when GraphQL could not answer for the repository at all for a reason
        other than access (e.g. a GitHub Enterprise Server whose schema lacks a field):
        the caller reads those files through REST.
        """
        data, errors = await self._graphql(query, variables)
        repository = data.get("repository")
        if not isinstance(repository, dict):
            for error in errors:
                kind = _GRAPHQL_ERRORS.get(error.type or "")
                if kind is not None and (error.path or ["repository"])[0] == "repository":
                    label = f"POST {GRAPHQL_ROUTE}"
                    raise kind(f"{label}: {error.message}", route=label, errors=[error.message])
            log.warning(
                "GitHub GraphQL could not read blobs (%s); reading them through REST",
                "; ".join(e.message for e in errors) or "no repository in the answer",
            )
            return None
        nodes = dict(repository)
        for error in errors:
            path = error.path or []
            if len(path) >= 2 and path[0] == "repository" and isinstance(path[1], str):
                nodes[path[1]] = None  # its data, if any, is not to be trusted
            else:
                log.warning("GitHub GraphQL error beside the blobs: %s", error.message)
        return nodes

    async def _graphql(
        self, query: str, variables: dict[str, Any]
    ) -> tuple[dict[str, Any], list[GraphQLError]]:
        """POST one query through githubkit; its ``data`` and GraphQL ``errors``.

        HTTP failures, rate limits (also those GraphQL answers with 200) and 5xx are
        handled by :meth:`_send` as for REST.  Partial answers are GraphQL's normal:
        ``data`` with ``errors`` naming the ``path`` of what failed.
        https://docs.github.com/en/graphql/guides/forming-calls-with-graphql#communicating-with-graphql
        """
        label = f"POST {GRAPHQL_ROUTE}"
        body = GraphQLNamespace.build_graphql_request(query, variables)
        response = await self._send(
            "POST",
            GRAPHQL_ROUTE,
            lambda: self._gh.arequest(
                "POST", self.graphql_url, json=body, response_model=GraphQLResponse
            ),
            graphql=True,
        )
        assert response is not None
        try:
            parsed: GraphQLResponse = response.parsed_data
        except ValueError:  # pydantic: neither data nor errors, or not JSON
            raise GitHubError(f"{label}: unexpected answer from GitHub", route=label) from None
        return dict(parsed.data or {}), list(parsed.errors or [])

    # ------------------------------------------------------------------- writes

    async def create_check_run(
        self,
        head_sha: str,
        *,
        external_id: str,
        details_url: str | None = None,
        actions: Sequence[CheckRunAction] = (),
    ) -> int:
        """Start the ``docgen`` check run on ``head_sha``; returns its id."""
        payload = check_run_create_payload(
            head_sha,
            external_id=external_id,
            started_at=_iso(self.clock.time()),
            details_url=details_url,
            actions=actions,
        )
        response = await self._send(
            "POST",
            "/repos/{owner}/{repo}/check-runs",
            lambda: self._gh.rest.checks.async_create(
                self.owner, self.repo, data=payload, headers=self._headers
            ),
        )
        assert response is not None
        return _parsed(_id, response, "POST /repos/{owner}/{repo}/check-runs")

    async def complete_check_run(
        self,
        check_run_id: int,
        *,
        conclusion: Conclusion,
        title: str,
        summary: str,
        annotations: Sequence[dict[str, Any]] = (),
        text: str | None = None,
        details_url: str | None = None,
        actions: Sequence[CheckRunAction] = (),
    ) -> int:
        """Complete the run; annotations beyond 50 go in further PATCHes.  Returns how many."""
        payloads = check_run_update_payloads(
            conclusion=conclusion,
            title=title,
            summary=summary,
            annotations=annotations,
            text=text,
            completed_at=_iso(self.clock.time()),
            details_url=details_url,
            actions=actions,
        )
        for payload in payloads:
            await self._send(
                "PATCH",
                "/repos/{owner}/{repo}/check-runs/{check_run_id}",
                lambda payload=payload: self._gh.rest.checks.async_update(
                    self.owner, self.repo, check_run_id, data=payload, headers=self._headers
                ),
            )
        return len(payloads)

    async def report_progress(self, check_run_id: int, *, title: str, summary: str) -> None:
        """Say on a running check run what it is waiting for (it stays in progress)."""
        payload = {"status": "in_progress", "output": check_run_output(title, summary)}
        await self._send(
            "PATCH",
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            lambda: self._gh.rest.checks.async_update(
                self.owner, self.repo, check_run_id, data=payload, headers=self._headers
            ),
        )

    async def create_review(
        self,
        number: int,
        commit_id: str,
        comments: Sequence[ReviewComment],
        *,
        body: str | None = None,
    ) -> ReviewResult:
        """Post the comments as one COMMENT review; on 422 split the batch and retry.

        GitHub refuses a whole review when one comment targets a line outside the diff
        (422).  The batch is bisected, each half posted as its own review, until the
        comments GitHub still refuses alone are returned in ``rejected`` with its
        message.  Other errors propagate: comments posted before them stay posted, and
        the markers make the next run skip them.
        """
        result = ReviewResult()
        if comments:
            await self._post_batch(number, commit_id, list(comments), body, result)
        return result

    async def _post_batch(
        self,
        number: int,
        commit_id: str,
        batch: list[ReviewComment],
        body: str | None,
        result: ReviewResult,
    ) -> None:
        payload = review_payload(commit_id, batch, body)
        try:
            response = await self._send(
                "POST",
                "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                lambda: self._gh.rest.pulls.async_create_review(
                    self.owner, self.repo, number, data=payload, headers=self._headers
                ),
                already_done=lambda: self._batch_posted(number, batch),
            )
        except Unprocessable as exc:
            if len(batch) == 1:
                result.rejected.append((batch[0], exc.reason))
                return
            middle = len(batch) // 2
            await self._post_batch(number, commit_id, batch[:middle], body, result)
            await self._post_batch(number, commit_id, batch[middle:], body, result)
            return
        result.posted.extend(batch)
        if response is not None:
            route = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
            result.review_ids.append(_parsed(_id, response, route))

    async def _batch_posted(self, number: int, batch: Sequence[ReviewComment]) -> bool:
        """Whether a review whose POST failed with a 5xx was stored anyway (reviews are atomic)."""
        markers = [m for m in (render.parse_marker(c.body) for c in batch) if m is not None]
        if not markers:
            return False
        return markers[0] in await self.existing_markers(number)

    async def add_reaction(self, comment_id: int, content: str = "eyes") -> None:
        """React to an issue comment (👀 on a ``/docgen`` command)."""
        await self._send(
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            lambda: self._gh.rest.reactions.async_create_for_issue_comment(
                self.owner, self.repo, comment_id, data={"content": content}, headers=self._headers
            ),
        )

    async def post_issue_comment(self, number: int, body: str) -> int:
        """Comment on the PR's conversation; returns the comment id."""
        response = await self._send(
            "POST",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            lambda: self._gh.rest.issues.async_create_comment(
                self.owner, self.repo, number, data={"body": body}, headers=self._headers
            ),
        )
        assert response is not None
        return _parsed(_id, response, "POST /repos/{owner}/{repo}/issues/{issue_number}/comments")


def _prepared(client: GitHub[Any], clock: Clock | None) -> PooledGitHub:
    """``client`` as PullRequestAPI needs it: our pacer, no githubkit retries or HTTP
    cache, a pool for ``async with api:``.

    Clients from :class:`InstallationClients` already are; any other gets an equivalent
    client sharing its auth and token cache.
    """
    config = client.config
    if (
        isinstance(client, PooledGitHub)
        and isinstance(config.throttler, WritePacer)
        and config.auto_retry is None
        and not config.http_cache
    ):
        return client
    throttler = (
        config.throttler if isinstance(config.throttler, WritePacer) else WritePacer(clock=clock)
    )
    changed = dataclasses.replace(config, throttler=throttler, auto_retry=None, http_cache=False)
    return PooledGitHub(client.auth, config=changed)
