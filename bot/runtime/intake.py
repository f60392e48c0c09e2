"""What a webhook request may cost before its signature is checked.

Anyone can POST to ``/webhook``.  Until ``X-Hub-Signature-256`` matches, a request is
a stranger's: it must not grow anything that lasts (metric labels), must not crash
the handler (a header that is not ASCII), and must not hold more memory or time than
a real delivery needs.  GitHub caps a payload at 25 MB and expects an answer within
10 s, so a body that is bigger or slower is not GitHub's:

* https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
* https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks#respond-within-10-seconds

:class:`BodyLimits` says how much one body may be, how long it may take to arrive,
and how many body bytes all requests of the process may hold at once
(:class:`InFlight`); :func:`read_body` enforces the three and raises a
:class:`BodyRefused` carrying the HTTP status and the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

MB = 1024 * 1024
GITHUB_PAYLOAD_CAP = 25 * MB
GITHUB_ANSWER_WITHIN = 10.0  # seconds

# GitHub's webhook event names (the X-GitHub-Event values):
# https://docs.github.com/en/webhooks/webhook-events-and-payloads
# Only these become a Prometheus label, and only once the signature matched; anything
# else counts under OTHER_EVENT, so a stranger cannot add label values (each one a
# time series held in memory and printed by every /metrics scrape).
KNOWN_EVENTS = frozenset(
    {
        "branch_protection_configuration",
        "branch_protection_rule",
        "check_run",
        "check_suite",
        "code_scanning_alert",
        "commit_comment",
        "create",
        "custom_property",
        "custom_property_values",
        "delete",
        "dependabot_alert",
        "deploy_key",
        "deployment",
        "deployment_protection_rule",
        "deployment_review",
        "deployment_status",
        "discussion",
        "discussion_comment",
        "fork",
        "github_app_authorization",
        "gollum",
        "installation",
        "installation_repositories",
        "installation_target",
        "issue_comment",
        "issue_dependencies",
        "issues",
        "label",
        "marketplace_purchase",
        "member",
        "membership",
        "merge_group",
        "meta",
        "milestone",
        "org_block",
        "organization",
        "package",
        "page_build",
        "personal_access_token_request",
        "ping",
        "project",
        "project_card",
        "project_column",
        "projects_v2",
        "projects_v2_item",
        "projects_v2_status_update",
        "public",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "push",
        "registry_package",
        "release",
        "repository",
        "repository_advisory",
        "repository_dispatch",
        "repository_import",
        "repository_ruleset",
        "repository_vulnerability_alert",
        "secret_scanning_alert",
        "secret_scanning_alert_location",
        "secret_scanning_scan",
        "security_advisory",
        "security_and_analysis",
        "sponsorship",
        "star",
        "status",
        "sub_issues",
        "team",
        "team_add",
        "watch",
        "workflow_dispatch",
        "workflow_job",
        "workflow_run",
    }
)
OTHER_EVENT = "other"


def event_label(event: str, *, verified: bool) -> str:
    """The ``event`` label of a delivery: GitHub's name once signed, else ``other``."""
    return event if verified and event in KNOWN_EVENTS else OTHER_EVENT


def signature_matches(secret: str, body: bytes | bytearray, header: str) -> bool:
    """Whether ``X-Hub-Signature-256`` (``sha256=<hex>``) is the HMAC of ``body``.

    Compared as bytes: ``hmac.compare_digest`` raises on a ``str`` that is not ASCII,
    and a header is whatever the sender put there (Starlette decodes it as latin-1, so
    encoding it back gives the bytes that were sent).
    https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    """
    expected = b"sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, header.encode("latin-1", "replace"))


@dataclass(frozen=True)
class BodyLimits:
    """How much a webhook body may be, take, and hold with the others in flight."""

    max_bytes: int = GITHUB_PAYLOAD_CAP
    in_flight_bytes: int = 64 * MB  # all bodies being read or held by this process
    timeout: float = GITHUB_ANSWER_WITHIN  # seconds from the first byte read to the last


class BodyRefused(Exception):
    """A body not read (or not kept): the HTTP status, the outcome label, the reason."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


class InFlight:
    """Body bytes held by the requests of this process: a quota, not a lock.

    Single event loop, no awaits inside: plain arithmetic is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most held at once (tests, curiosity)

    def try_take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        self.peak = max(self.peak, self.used)
        return True

    def give_back(self, n: int) -> None:
        self.used -= n


def _too_large(limits: BodyLimits) -> BodyRefused:
    return BodyRefused(
        413,
        "too_large",
        f"payload larger than {limits.max_bytes / MB:g} MB (GitHub's cap is 25 MB)",
    )


def _busy() -> BodyRefused:
    return BodyRefused(503, "busy", "too many webhook bodies in flight; try again shortly")


class Body:
    """A request body read within :class:`BodyLimits`; release its quota with :meth:`close`."""

    def __init__(self, inflight: InFlight) -> None:
        self.data = bytearray()
        self._inflight = inflight
        self._held = 0

    def take(self, n: int) -> bool:
        if not self._inflight.try_take(n):
            return False
        self._held += n
        return True

    def close(self) -> None:
        self._inflight.give_back(self._held)
        self._held = 0


async def read_body(
    chunks: AsyncIterator[bytes], declared: str | None, limits: BodyLimits, inflight: InFlight
) -> Body:
    """Read a body within ``limits``; the caller must :meth:`Body.close` it when done.

    A declared ``Content-Length`` is reserved whole before anything is read (GitHub
    sends one), so a body that could not be held is refused at once; a chunked body
    reserves as it arrives.  Raises :class:`BodyRefused`: 413 too large, 503 no room
    among the bodies in flight, 408 not all there within ``limits.timeout``.
    """
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > limits.max_bytes:
        raise _too_large(limits)
    body = Body(inflight)
    if size is not None and not body.take(size):
        raise _busy()
    try:
        async with asyncio.timeout(limits.timeout):
            async for chunk in chunks:
                if len(body.data) + len(chunk) > limits.max_bytes:
                    raise _too_large(limits)
                unreserved = size is None or len(body.data) + len(chunk) > size
                if unreserved and not body.take(len(chunk)):
                    raise _busy()
                body.data += chunk
    except TimeoutError:
        body.close()
        raise BodyRefused(
            408, "body_timeout", f"body not received within {limits.timeout:g} s"
        ) from None
    except BaseException:
        body.close()
        raise
    return body
