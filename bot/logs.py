"""Structured logs: one JSON object per line, a correlation id on each, no secrets.

The delivery id (and the PR, once known) live in a context variable, so every line a
delivery's work writes — web handler, job, GitHub and LLM calls — carries them without
threading them through every call.  :class:`Redactor` scrubs secrets from messages
and extras as a last line of defence (invariant 9): the code never logs a secret on
purpose, and this makes sure an exception text quoting one does not leak it either.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "docgen_log_context", default=None
)

# Standard LogRecord attributes: everything else on a record is an "extra".
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# Shapes of credentials that may turn up in exception texts or payloads, as one
# pattern (one scan per string: every log line's strings go through it).  The header
# alternative keeps the header's name and separator and redacts the value.
_CREDENTIALS = re.compile(
    "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----",
            r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{16,}",
            r"\bsk-[A-Za-z0-9_\-]{16,}",
            r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]+",  # JWTs
            r"(?P<header>(?i:authorization|api-key|x-api-key))(?P<sep>\"?\s*[:=]\s*\"?)"
            r"(?i:bearer |token )?[^\s\"',}]+",
        ]
    )
)
REDACTED = "[redacted]"


def _redact_match(match: re.Match[str]) -> str:
    if match.group("header") is not None:
        return f"{match.group('header')}{match.group('sep')}{REDACTED}"
    return REDACTED


class Redactor:
    """Replaces known secret values and credential-shaped strings with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def add(self, *secrets: str | None) -> None:
        merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 6}
        self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _CREDENTIALS.sub(_redact_match, text)

    def scrub(self, value: Any) -> Any:
        """Redact inside nested dicts/lists/strings (for log extras and Sentry events)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


REDACTOR = Redactor()


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add correlation fields (delivery_id, repo, pr, job_key, ...) to every log line."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    token = _context.set(current)
    try:
        yield
    finally:
        _context.reset(token)


def context() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extras."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(context())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        data = self.redactor.scrub(data)
        return json.dumps(data, default=str, ensure_ascii=False)


def setup(level: str = "INFO", *, stream: Any = None, secrets: Iterable[str] = ()) -> None:
    """Route all logging through one JSON handler on stderr (idempotent)."""
    REDACTOR.add(*secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_docgen", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._docgen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Third-party chatter at INFO would drown the correlation lines.
    for noisy in ("httpx", "httpcore", "httpx2", "uvicorn.access", "openai", "hishel"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
