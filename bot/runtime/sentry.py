"""Sentry: errors and performance traces per job, with secrets and source code scrubbed.

Only active when ``SENTRY_DSN`` is set.  Each job runs in :func:`job_scope`: its own
isolation scope tagged with the repository, PR, delivery id and installation, and a
``docgen.review`` transaction (op ``job``); an unexpected exception is captured there.

Invariant 9: nothing secret leaves the process.  Two layers make sure of it:

* the SDK is told not to collect what we would have to scrub (local variables, source
  lines around frames, request bodies, personal data);
* :func:`before_send` / :func:`before_send_transaction` still drop those parts if they
  turn up (an integration, a future SDK default, a changed option), drop
  credential headers, and run every string left through :data:`bot.logs.REDACTOR`.

Exception types and (redacted) messages are kept: they are what makes an event useful.
https://docs.sentry.io/platforms/python/data-management/sensitive-data/
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from bot import logs
from bot.config import Settings
from bot.runtime.queue.store import JobLost, PermanentJobError, RetryLater
from bot.runtime.secrets import secret_values

# Headers that carry credentials (GitHub's webhook signatures let anyone who has one
# replay that delivery, so they go too).
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "api-key", "x-api-key"}
)
# Frame keys holding local variables or lines of source code.
_FRAME_SOURCE = ("vars", "pre_context", "context_line", "post_context")
# Span data that would carry a prompt (source code), an answer or a body.
_SPAN_PAYLOAD = re.compile(r"messages|response\.text|body|(?:prompt|input|output)(?!_tokens)", re.I)
# A private key cut short (``max_value_length``): the redactor's pattern needs both ends.
_PEM_TAIL = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*", re.S)

# Job outcomes that are decisions, not bugs: no error event, only a transaction status.
_EXPECTED_STATUS: tuple[tuple[type[BaseException], str], ...] = (
    (RetryLater, "unavailable"),
    (PermanentJobError, "failed_precondition"),
    (JobLost, "aborted"),
)


def _secret_header(name: Any) -> bool:
    name = str(name).lower()
    return name in _SECRET_HEADERS or name.startswith("x-hub-signature")


def _strip_frames(container: Any) -> None:
    """Drop locals and source lines from every frame of ``exception`` / ``threads``."""
    if not isinstance(container, dict):
        return
    for value in container.get("values") or ():
        stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
        if not isinstance(stacktrace, dict):
            continue
        for frame in stacktrace.get("frames") or ():
            if isinstance(frame, dict):
                for key in _FRAME_SOURCE:
                    frame.pop(key, None)


def _strip_request(request: Any) -> None:
    if not isinstance(request, dict):
        return
    request.pop("data", None)  # a webhook body holds PR text and code
    request.pop("cookies", None)
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {k: v for k, v in headers.items() if not _secret_header(k)}
    elif isinstance(headers, list):  # [[name, value], ...] is also accepted by Sentry
        request["headers"] = [
            h for h in headers if not (isinstance(h, list | tuple) and h and _secret_header(h[0]))
        ]


def _redact(value: Any) -> Any:
    """:data:`bot.logs.REDACTOR` over every string inside ``value``, then key fragments."""
    if isinstance(value, str):
        return _PEM_TAIL.sub(logs.REDACTED, logs.REDACTOR(value))
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def scrub(event: dict[str, Any]) -> dict[str, Any]:
    """The event without locals, source lines, bodies and credentials; strings redacted."""
    _strip_frames(event.get("exception"))
    _strip_frames(event.get("threads"))
    stacktrace = event.get("stacktrace")
    if isinstance(stacktrace, dict):
        _strip_frames({"values": [{"stacktrace": stacktrace}]})
    _strip_request(event.get("request"))
    for span in event.get("spans") or ():
        data = span.get("data") if isinstance(span, dict) else None
        if isinstance(data, dict):  # LLM prompts and answers (source code), bodies
            span["data"] = {k: v for k, v in data.items() if not _SPAN_PAYLOAD.search(str(k))}
    # Breadcrumb messages, log extras, span descriptions, exception messages: redacted.
    return _redact(event)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Scrub one error event before it is sent (an exception here drops the event)."""
    return scrub(event)


def before_send_transaction(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Scrub one transaction (spans carry URLs and breadcrumbs) before it is sent."""
    return scrub(event)


def init(settings: Settings, **options: Any) -> bool:
    """Start Sentry when ``SENTRY_DSN`` is set; returns whether it did.

    ``options`` override the SDK options set here (tests pass a ``transport``).
    """
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    logs.REDACTOR.add(*secret_values(settings))
    config: dict[str, Any] = {
        "dsn": settings.sentry_dsn.get_secret_value(),
        # send_default_pii is left unset: off by default (and deprecated in newer SDKs).
        "include_local_variables": False,  # locals hold source code and tokens
        "include_source_context": False,  # the lines around a frame are source code
        "max_request_body_size": "never",  # webhook bodies: PR text and code
        "before_send": before_send,
        "before_send_transaction": before_send_transaction,
        "traces_sample_rate": float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0.1")),
    }
    config.update(options)
    sentry_sdk.init(**config)
    return True


def _enabled() -> Any:
    """The ``sentry_sdk`` module when a client that can send is set up, else None."""
    # Not imported means nobody called init(): no import cost for the CLI and tests.
    sdk = sys.modules.get("sentry_sdk")
    if sdk is None:
        return None
    client = sdk.get_client()
    return sdk if client.is_active() and client.transport is not None else None


@contextlib.contextmanager
def job_scope(
    *,
    repo: str | None,
    pr: int | str | None,
    delivery_id: str | None,
    installation_id: int | str | None,
    job_key: str | None,
    name: str = "docgen.review",
) -> Iterator[None]:
    """Run one job in its own Sentry scope and transaction; capture what it raises.

    Does nothing when Sentry is not initialised.  Exceptions always propagate: the
    job's retry logic is not Sentry's business.  Expected outcomes (``RetryLater``,
    ``PermanentJobError``, ``JobLost``) only set the transaction's status.
    """
    sdk = _enabled()
    if sdk is None:
        yield
        return
    tags = {
        "repo": repo,
        "pr": pr,
        "delivery_id": delivery_id,
        "installation_id": installation_id,
        "job_key": job_key,
    }
    with sdk.isolation_scope() as scope:
        for key, value in tags.items():
            if value is not None:
                scope.set_tag(key, str(value))
        error: BaseException | None = None
        with sdk.start_transaction(op="job", name=name, source="task") as transaction:
            try:
                yield
            except BaseException as exc:
                status = next((s for t, s in _EXPECTED_STATUS if isinstance(exc, t)), None)
                if status is None and isinstance(exc, Exception):
                    sdk.capture_exception(exc)
                    status = "internal_error"
                transaction.set_status(status or "cancelled")  # cancelled: task cancelled
                # Raised again once the transaction is closed: leaving its block with an
                # exception would overwrite the status with internal_error.
                error = exc
            else:
                transaction.set_status("ok")
        if error is not None:
            raise error
