"""The secret values of the process's settings: one list for the logs and for Sentry.

Invariant 9 (secrets never reach logs, Sentry events or the check run) rests on the
redactor knowing every secret value.  Both :func:`bot.logs.setup` (through the
composition root) and :func:`bot.runtime.sentry.init` take them from :func:`secret_values`, so
the two can never drift apart, and a new ``SecretStr`` field of
:class:`bot.config.Settings` is covered without editing a list.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.config import Settings


def secret_values(settings: Settings) -> list[str]:
    """Every secret of ``settings``: each ``SecretStr`` field's value, the parts of them
    that can turn up on their own (a Redis URL's password, the private key's lines),
    and a private key read from ``GITHUB_PRIVATE_KEY_PATH``."""
    out = [
        value.get_secret_value()
        for value in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(value, SecretStr)
    ]
    out += _redis_password(settings)
    out += _private_key_parts(settings)
    return out


def _redis_password(settings: Settings) -> list[str]:
    """The password of ``REDIS_URL`` alone: a client error may quote it without the URL."""
    if settings.redis_url is None:
        return []
    with contextlib.suppress(ValueError):  # not a URL: the whole value is listed anyway
        if password := urlsplit(settings.redis_url.get_secret_value()).password:
            return [password]
    return []


def _private_key_parts(settings: Settings) -> list[str]:
    """The App's PEM (also from a file) and its base64 lines one by one: a traceback or
    a truncated message can carry a single line of it."""
    try:
        pem = settings.private_key_pem()
    except OSError:  # an unreadable key file fails at start-up with its own message
        return []
    if not pem:
        return []
    return [pem, *(line.strip() for line in pem.splitlines() if not line.startswith("-----"))]
