"""How the answer's JSON shape is asked for: response modes and the schema per request.

The model writes *content* as JSON; ``style.compose`` lays it out, so the model never
controls quoting or layout.  The schema carries each definition's facts (parameter and
exception names, returns, yields) so that a server constraining output by it leaves a
small model only the prose to get wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.docstrings.llm.provider import GenerationRequest, item_ids
from bot.docstrings.models import Target
from bot.docstrings.update import Ask
from bot.docstrings.validate import MAX_SUMMARY_CHARS

# How the answer's shape is asked for, best first.  Servers differ: OpenAI and Azure
# take ``json_schema`` (strict structured outputs); llama-cpp-python's server answers it
# with HTTP 500 but takes ``json_object`` with a ``schema`` (grammar-constrained); others
# only do tool calling, or nothing.  ``text`` asks in words and parses leniently.
# https://platform.openai.com/docs/guides/structured-outputs
# https://llama-cpp-python.readthedocs.io/en/latest/server/#guides (JSON mode, schema)
RESPONSE_MODES: tuple[str, ...] = ("json_schema", "json_object", "tools", "text")
MODE_LABELS = {
    "json_schema": "json_schema (strict structured output)",
    "json_object": "json_object with the schema",
    "tools": "tool calling",
    "text": "plain JSON in the text",
}
TOOL_NAME = "write_docs"
# Modes in which servers like llama.cpp turn the schema into a grammar (lengths work).
GRAMMAR_MODES = frozenset({"json_object", "tools"})

_STRING: dict[str, Any] = {"type": "string"}


def _keyed(names: list[str], value: Mapping[str, Any]) -> dict[str, Any]:
    """An object with exactly ``names`` as keys, in order (strict mode: all required,
    no others), each holding ``value``."""
    return {
        "type": "object",
        "properties": {name: value for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


# Lengths for grammar-constrained modes only (OpenAI's strict mode has no maxLength):
# a small model under a grammar otherwise rambles inside one string until max_tokens.
# https://github.com/ggml-org/llama.cpp/blob/master/grammars/README.md (JSON schemas)
MAX_LENGTHS = {"summary": MAX_SUMMARY_CHARS, "description": 400, "item": 200}


def _string(limit: int | None) -> dict[str, Any]:
    return _STRING if limit is None else {"type": "string", "maxLength": limit}


def item_schema(
    target: Target, *, lengths: bool = False, update: Ask | None = None
) -> dict[str, Any]:
    """The answer for one definition, with its facts built in.

    Parameter and exception names are keys in signature order, and ``returns`` /
    ``yields`` exist only where the code has them: where the server constrains output
    by the schema, even a small model can only get the prose wrong.  ``lengths`` adds
    ``maxLength`` to every string (for grammar-constrained modes).
    """
    size = MAX_LENGTHS if lengths else {}
    text = _string(size.get("item"))
    params, returns, yields, raises = item_facts(target, update)
    props: dict[str, Any] = {
        "summary": _string(size.get("summary")),
        "description": _string(size.get("description")),
    }
    if params:
        props["params"] = _keyed(params, text)
    if returns:
        props["returns"] = text
    if yields:
        props["yields"] = text
    if raises:
        props["raises"] = _keyed(raises, text)
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def response_schema(request: GenerationRequest, *, lengths: bool = False) -> dict[str, Any]:
    """The JSON Schema of the answer to ``request``.

    ``docs`` is an object keyed by the request's ids, every one required and no other
    allowed: exactly one entry per item, and no invented id.  (An array with an ``enum``
    of ids and ``minItems``/``maxItems`` would still allow one id twice and another
    missing.)  Uses only what OpenAI's strict mode, llama.cpp's grammar converter and
    plain JSON Schema all support: objects, strings, ``required``,
    ``additionalProperties: false``.
    """
    entries = {
        ident: item_schema(item.target, lengths=lengths, update=item.update)
        for ident, item in zip(item_ids(request), request.items, strict=True)
    }
    docs = _keyed(list(entries), {})
    docs["properties"] = entries
    return _keyed(["docs"], docs)


def format_args(mode: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields that ask for ``schema`` in ``mode`` (none for ``text``)."""
    if mode == "json_schema":
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "docs", "strict": True, "schema": schema},
            }
        }
    if mode == "json_object":
        # llama-cpp-python turns "schema" into a grammar; servers without it ignore it.
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "tools":
        function = {
            "name": TOOL_NAME,
            "description": "Record the docstring content of every item.",
            "parameters": schema,
        }
        return {
            "tools": [{"type": "function", "function": function}],
            "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
        }
    return {}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def item_facts(
    target: Target, update: Ask | None = None
) -> tuple[list[str], bool, bool, list[str]]:
    """What the source does not say outright: the exact parameter names to describe,
    and whether the code calls for Returns, Yields and Raises sections (and which).

    For an update, only the entries the existing docstring lacks.
    """
    if update is not None:
        return list(update.params), False, False, list(update.raises)
    is_class = target.kind == "class"
    returns = target.returns_value and not target.yields and not is_class
    return (
        [p.name for p in target.documentable_params],
        bool(returns and not target.is_property),
        bool(target.yields and not is_class),
        [] if is_class else list(target.raises),
    )
