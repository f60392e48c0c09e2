"""What a failed model call means: a safe reason, retry or not, and how long to wait.

Connection errors, timeouts and 408/409/429/5xx are retried with full-jitter backoff,
honouring ``retry-after-ms`` / ``Retry-After``.  Error messages never carry secrets
(invariant 9): a server's own text is only shown through :func:`redact`.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.docstrings.llm.answer import CONTROL_CHARS


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying a failed call.

    Full-jitter exponential backoff (``uniform(0, min(cap, base * 2**attempt))``)
    unless the server says how long to wait; a server asking for more than
    ``max_retry_after`` seconds makes us give up instead.
    """

    max_retries: int = 3
    base: float = 0.5
    cap: float = 20.0
    jitter: bool = True
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        return rand() * ceiling if self.jitter else ceiling


# https://platform.openai.com/docs/guides/error-codes and the SDK's own _should_retry.
RETRYABLE_STATUS = frozenset({408, 409, 429})
_STATUS_REASON = {
    400: "request rejected",
    401: "authentication failed",
    403: "permission denied",
    404: "model or deployment not found",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "request not processable",
    429: "rate limited",
}
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; a date is taken relative to the
    response's ``Date`` header when present (server clock), else to ``now()``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lower.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds == seconds:  # not NaN
            return seconds
    value = lower.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    reference = now()
    date = lower.get("date")
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            reference = email.utils.parsedate_to_datetime(date).timestamp()
    return when.timestamp() - reference


@dataclass(frozen=True)
class Failure:
    reason: str
    retryable: bool
    wait: float | None = None  # what the server asked for, seconds
    unanswered: bool = False  # sent, but no answer came: the server may have billed it
    timed_out: bool = False
    fatal: bool = False  # no later call can succeed either (key, permission, model)


# Raised by httpx before anything reached the server: nothing to charge.
_NOT_SENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})
_FATAL_STATUS = frozenset({401, 403, 404})


def classify(exc: Exception, timeout: float) -> Failure:
    """Map an SDK exception to a safe reason.  Never echo the server's message: a
    401's message quotes part of the key."""
    import openai

    sent = type(exc.__cause__).__name__ not in _NOT_SENT
    if isinstance(exc, openai.APITimeoutError):
        return Failure(
            f"request timed out after {timeout:g} s", True, unanswered=sent, timed_out=sent
        )
    if isinstance(exc, openai.APIConnectionError):
        reason = "connection lost before the answer" if sent else "could not connect to the API"
        return Failure(reason, True, unanswered=sent)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers = exc.response.headers
        label = _STATUS_REASON.get(status, "server error" if status >= 500 else "request failed")
        code = exc.code
        detail = f", {code}" if isinstance(code, str) and _SAFE_CODE.match(code) else ""
        if status in (401, 403):
            detail = ""  # the code is enough, and says nothing about the key
        reason = f"{label} ({status}{detail})"
        should = headers.get("x-should-retry")
        retryable = status in RETRYABLE_STATUS or status >= 500
        if should in ("true", "false"):
            retryable = should == "true"
        if is_quota_error(status, code):
            retryable = False
            reason = f"quota exhausted ({status}{detail}): check the plan and billing"
        return Failure(reason, retryable, retry_after(headers), fatal=status in _FATAL_STATUS)
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("unexpected response from the API", False)
    return Failure(f"API client error ({type(exc).__name__})", False)


def is_quota_error(status: int, code: object) -> bool:
    """OpenAI's "You exceeded your current quota" 429: it comes without Retry-After and
    does not pass by waiting (https://platform.openai.com/docs/guides/error-codes#api-errors)."""
    return status == 429 and code == "insufficient_quota"


# Words by which a server's error names the part of our request it cannot take.
_SHAPE_WORDS = re.compile(
    r"response_format|json_schema|json_object|\bschema\b|\btools?\b|tool_choice|"
    r"function|grammar",
    re.I,
)
_SHAPE_PARAMS = frozenset({"response_format", "tools", "tool_choice"})
_SHAPE_STATUS = frozenset({400, 415, 422, 500, 501})


def _server_message(exc: Any) -> str:
    """The server's own error text, from the shapes servers use: OpenAI's
    ``{"error": {"message"}}``, FastAPI's ``{"detail"}``, a bare string."""
    body = getattr(exc, "body", None)
    for _ in range(3):
        if not isinstance(body, dict):
            break
        body = next(
            (body[k] for k in ("error", "message", "detail", "msg") if body.get(k)), None
        )
    if isinstance(body, list | dict):
        body = json.dumps(body, ensure_ascii=False)
    return body if isinstance(body, str) else ""


_SECRET_PATTERNS = (
    (re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}"), "sk-…"),
    (re.compile(r"(?i)\bbearer\s+\S+"), "Bearer …"),
    (
        re.compile(r"(?i)\b(api[-_ ]?key|token|secret|password|authorization)([\"']?\s*[:=]\s*)\S+"),
        r"\1\2…",
    ),
    (re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}"), "…"),  # long key-like runs
)


def redact(text: str, secrets: tuple[str, ...] = (), limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters, without ``secrets`` or
    anything shaped like a key or token (invariant 9)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    text = " ".join(CONTROL_CHARS.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shape_refusal(exc: Exception, mode: str) -> str | None:
    """The server's reason when ``exc`` says it cannot take the request's shape.

    llama-cpp-python answers ``json_schema`` with HTTP 500 naming it; OpenAI answers a
    schema it cannot take with 400 and ``param: response_format``.  A ``text``-mode
    request has no shape left to change: its errors are ordinary.
    """
    import openai

    if mode == "text" or not isinstance(exc, openai.APIStatusError):
        return None
    if exc.status_code not in _SHAPE_STATUS:
        return None
    message = _server_message(exc)
    if getattr(exc, "param", None) in _SHAPE_PARAMS or _SHAPE_WORDS.search(message):
        return message or f"HTTP {exc.status_code}"
    return None
