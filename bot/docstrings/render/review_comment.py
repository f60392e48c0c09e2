"""The body of a review comment that carries a one-click suggestion, and its marker.

The hidden marker (:func:`marker`, :func:`parse_marker`) identifies docgen's own
comments, so a re-run posts nothing it has posted before (invariant 4).
"""

from __future__ import annotations

import base64
import binascii
import re

from bot.docstrings.models import (
    Action,
    Outcome,
    Suggestion,
)
from bot.docstrings.render.markdown import code_span, fence_for, inline

OFFLINE_NOTE = "skeleton written without an LLM, edit before committing"

# ------------------------------------------------------------------------ marker

_MARKER = re.compile(r"<!-- docgen:v1 id=([A-Za-z0-9_-]*) h=([A-Za-z0-9._:-]*) -->")
_HASH = re.compile(r"[A-Za-z0-9._:-]*")


def marker(target_id: str, docstring_hash: str) -> str:
    """The hidden HTML comment that identifies a suggestion comment.

    The id is url-safe base64 (no padding), so ids holding spaces, ``-->`` or any
    other text cannot break out of the comment.  The hash must be a plain token
    (hex digits, letters, ``._:-``); anything else is a programming error.
    """
    if not _HASH.fullmatch(docstring_hash):
        raise ValueError(f"docstring hash must match {_HASH.pattern}: {docstring_hash!r}")
    encoded = base64.urlsafe_b64encode(target_id.encode("utf-8", "surrogatepass"))
    return f"<!-- docgen:v1 id={encoded.decode('ascii').rstrip('=')} h={docstring_hash} -->"


def parse_marker(body: str) -> tuple[str, str] | None:
    """``(target_id, docstring_hash)`` from the last docgen marker in ``body``, if any."""
    found = _MARKER.findall(body or "")
    if not found:
        return None
    encoded, docstring_hash = found[-1]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogatepass"), docstring_hash
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# ---------------------------------------------------------------- suggestions


def _qualname_from_id(target_id: str) -> str:
    """``Target.id`` is ``path::qualname@line``; fall back to the whole id."""
    _, sep, rest = target_id.partition("::")
    if not sep:
        return target_id
    name, at, line = rest.rpartition("@")
    return name if at and line.isdigit() else rest


def suggestion_comment(
    s: Suggestion,
    *,
    offline: bool,
    action: Action,
    reason: str = "",
    qualname: str | None = None,
) -> str:
    """The body of one review comment carrying a one-click ```suggestion.

    A one-line headline, the suggestion block (its fence longer than any backtick run
    in the suggested lines, which GitHub accepts), then the hidden marker that makes
    re-runs idempotent.  GitHub's docs on suggestions:
    https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request
    """
    name = code_span(qualname or _qualname_from_id(s.target_id))
    if action == Action.UPDATED:
        headline = f"update the stale docstring of {name}"
        if reason.strip():
            headline += f" ({inline(reason)})"
    elif action == Action.ADDED:
        headline = f"add a docstring to {name}"
    else:
        headline = f"suggested docstring for {name}"
    if offline:
        headline += f" — {OFFLINE_NOTE}"
    fence = fence_for(s.body_lines)
    block = "\n".join([f"{fence}suggestion", *s.body_lines, fence])
    return f"📝 docgen: {headline}\n\n{block}\n\n{marker(s.target_id, s.docstring_hash)}"


def comment_for(outcome: Outcome) -> str | None:
    """The review comment for an outcome that carries a suggestion, else None."""
    if outcome.suggestion is None:
        return None
    return suggestion_comment(
        outcome.suggestion,
        offline=outcome.offline,
        action=outcome.action,
        reason=outcome.reason,
        qualname=outcome.target.qualname,
    )
