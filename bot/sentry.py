"""Sentry: errors and performance traces, with secrets and source code scrubbed.

Only active when ``SENTRY_DSN`` is set.  ``before_send`` runs every event through
:data:`bot.logs.REDACTOR` so tokens, keys and the webhook secret never leave the
process (invariant 9).
"""

from __future__ import annotations

import os
from typing import Any

from bot import logs
from bot.config import Settings


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Scrub one Sentry event before it is sent."""
    return logs.REDACTOR.scrub(event)


def init(settings: Settings) -> bool:
    """Start Sentry when ``SENTRY_DSN`` is set; returns whether it did."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        send_default_pii=False,
        before_send=before_send,
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0.1")),
    )
    return True
