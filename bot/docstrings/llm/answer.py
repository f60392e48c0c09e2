"""Reading a model's answer defensively: everything it returns is untrusted.

Content is *not* judged here: triple quotes, wrong parameter names and the like are
:mod:`bot.docstrings.validate`'s job.  This only turns text into :class:`~bot.docstrings.models.DocParts` per
id, or an error per id, and never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot.docstrings.models import DocParts

MAX_FIELD_CHARS = 2000  # per string in an answer
MAX_NAME_CHARS = 200  # parameter and exception names

# C0 and C1 controls except \t and \n; \r is normalised to \n first.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.S)


def clean_text(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return CONTROL_CHARS.sub("", value).strip()[:limit]


class _Bad(Exception):
    pass


def _text(entry: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = entry.get(key, None if required else "")
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _Bad(f'"{key}" is not a string')
    return clean_text(value)


def _pairs(entry: Mapping[str, Any], key: str, name_key: str) -> tuple[tuple[str, str], ...]:
    """``{"name": "text", ...}`` (what the schema asks for) or, leniently, a list of
    ``{"name": ..., "description": ...}`` objects (what unconstrained models write)."""
    value = entry.get(key, [])
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{name_key: k, "description": v} for k, v in value.items()]
    if not isinstance(value, list):
        raise _Bad(f'"{key}" is not an object or a list')
    out = []
    for pair in value[:64]:
        if not isinstance(pair, dict):
            raise _Bad(f'an entry of "{key}" is not an object')
        name, desc = pair.get(name_key), pair.get("description", "")
        if not isinstance(name, str) or not isinstance(desc, str):
            raise _Bad(f'an entry of "{key}" lacks a string "{name_key}" or "description"')
        out.append((clean_text(name, MAX_NAME_CHARS), clean_text(desc)))
    return tuple(out)


def _entry_parts(entry: Mapping[str, Any]) -> DocParts:
    summary = _text(entry, "summary", required=True)
    if not summary:
        raise _Bad("empty summary")
    return DocParts(
        summary=summary,
        description=_text(entry, "description"),
        params=_pairs(entry, "params", "name"),
        returns=_text(entry, "returns"),
        yields=_text(entry, "yields"),
        raises=_pairs(entry, "raises", "name"),
    )


NO_ENTRY = "the model returned no entry for this function"


def _load_json(text: str) -> Any:
    """The JSON value in a model's text: whole, in a code fence, or the first object in
    prose ("Here you go: {...} Hope it helps")."""
    fenced = _FENCE.match(text) if text.lstrip().startswith("```") else None
    if fenced:  # OpenAI-compatible servers without structured output sometimes fence
        text = fenced.group(1)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object")
    value, _ = json.JSONDecoder().raw_decode(text, start)
    return value


def _entries(data: Any, expected_ids: set[str]) -> dict[str, Any] | None:
    """id → raw entry, from the shapes answers come in: ``{"docs": {id: entry}}`` (the
    schema's), ``{"docs": [{"id": ..., ...}]}``, or the entries keyed at the top."""
    if not isinstance(data, dict):
        return None
    docs = data.get("docs")
    if docs is None and expected_ids & set(data):
        docs = data
    if isinstance(docs, dict):
        return {k: v for k, v in docs.items() if k in expected_ids}
    if not isinstance(docs, list):
        return None
    out: dict[str, Any] = {}
    for entry in docs:
        ident = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(ident, str) and ident in expected_ids and ident not in out:
            out[ident] = entry  # the first answer for an id wins
    return out


def parse_response(text: str, expected_ids: set[str]) -> tuple[dict[str, DocParts], dict[str, str]]:
    """Read a model answer defensively: parts per expected id, and errors for the rest.

    Never raises.  Invalid JSON fails every id; unknown ids are ignored; strings are
    capped at ``MAX_FIELD_CHARS`` and stripped of control characters (``\\n`` and
    ``\\t`` kept).  Content is *not* judged here — triple quotes, wrong parameter
    names and the like are :mod:`bot.docstrings.validate`'s job.
    """
    parts: dict[str, DocParts] = {}
    errors: dict[str, str] = {}
    if not isinstance(text, str):
        return {}, dict.fromkeys(expected_ids, "invalid JSON from model")
    try:
        data = _load_json(text)
    except (ValueError, RecursionError):
        return {}, dict.fromkeys(expected_ids, "invalid JSON from model")
    entries = _entries(data, expected_ids)
    if entries is None:
        return {}, dict.fromkeys(expected_ids, 'model answer has no "docs" entries')
    for ident, entry in entries.items():
        if not isinstance(entry, dict):
            errors[ident] = "malformed answer: the entry is not an object"
            continue
        try:
            parts[ident] = _entry_parts(entry)
        except _Bad as exc:
            errors[ident] = f"malformed answer: {exc}"
    for ident in expected_ids:
        if ident not in parts and ident not in errors:
            errors[ident] = NO_ENTRY
    return parts, errors
