"""The offline provider: no network, no key, deterministic skeletons from signatures."""

from __future__ import annotations

import re

import docstring_parser

from bot.docstrings.llm.provider import GenerationRequest, GenerationResult
from bot.docstrings.models import DocParts, Target, Usage
from bot.docstrings.validate import MAX_SUMMARY_CHARS
from bot.docstrings.voice import IMPERATIVE, in_mood

_DUNDER = re.compile(r"^__\w+__$")


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    out = []
    for word in re.split(r"[^A-Za-z0-9]+", spaced):
        if not word:
            continue
        out.append(word if word.isupper() and len(word) > 1 else word.lower())
    return out


def _sentence(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def _summary_for(target: Target) -> str:
    name = target.qualname.rsplit(".", 1)[-1]
    words = _words(name)
    if _DUNDER.match(name) or not words or not any(c.isalpha() for c in "".join(words)):
        return f"Describe what `{name}` does."
    summary = _sentence(words)
    return summary if len(summary) <= 72 else f"Describe what `{name[:50]}` does."


def _safe_fact(text: str | None, limit: int = 40) -> str | None:
    # A default is source text: keep it only when short, on one line
    # and unable to close a docstring literal.
    if not text or len(text) > limit or "\n" in text or "\\" in text:
        return None
    if '"""' in text or "'''" in text or "```" in text:
        return None
    return text


def _param_text(name: str, kind: str, default: str | None) -> str:
    # No annotation in the text: every style but plain already renders the type.
    if kind == "vararg":
        return "Additional positional arguments."
    if kind == "varkw":
        return "Additional keyword arguments."
    text = f"The {' '.join(_words(name)) or name}."
    value = _safe_fact(default)
    if value is not None:
        text += f" Defaults to {value}."
    return text


def _existing(target: Target) -> docstring_parser.Docstring | None:
    if not target.docstring:
        return None
    try:
        return docstring_parser.parse(target.docstring)
    except (docstring_parser.ParseError, ValueError, IndexError, AttributeError):
        return None


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _old_prose(docstring: str | None, old: docstring_parser.Docstring | None) -> tuple[str, str]:
    """The summary and description a stale docstring already had.

    docstring_parser's short description is only the first *line*: a first sentence
    that wraps onto the next line is joined back into the summary when it fits, else
    the whole first paragraph stays in the description (and a fresh summary is made).
    """
    if not docstring or old is None:
        return "", ""
    short = " ".join((old.short_description or "").split())
    long_text = (old.long_description or "").strip()
    first = " ".join(_PARAGRAPH_BREAK.split(docstring.strip(), maxsplit=1)[0].split())
    if not short or first == short or not first.startswith(short):
        return short, long_text
    # The parser cut a wrapped first paragraph: its tail opens long_description.
    after = _PARAGRAPH_BREAK.split(long_text, maxsplit=1)
    rest = after[1].strip() if len(after) > 1 else ""
    if len(first) <= MAX_SUMMARY_CHARS:
        return first, rest
    return "", "\n\n".join(p for p in (first, rest) if p)


def offline_parts(target: Target, mood: str = IMPERATIVE) -> DocParts:
    """A deterministic skeleton from the signature alone (the no-key fallback).

    A summary made from the name starts in the repository's ``mood`` ("Gets the
    user." where summaries say "Returns …").

    When the definition already has a (stale) docstring, what the maintainer wrote is
    kept: its summary, description and the descriptions of parameters, returns and
    exceptions that still exist; only what the signature added is filled in.
    """
    old = _existing(target)
    known = {p.arg_name.lstrip("*"): p.description or "" for p in old.params} if old else {}
    params = tuple(
        (p.name, known.get(p.name) or _param_text(p.name, p.kind, p.default))
        for p in target.documentable_params
    )
    summary, description = _old_prose(target.docstring, old)
    if not summary:
        summary = in_mood(_summary_for(target), mood)
    if target.kind == "class":
        return DocParts(summary=summary, description=description, params=params)
    returns = ""
    if target.returns_value and not target.yields and not target.is_property:
        returns = (
            old.returns.description if old and old.returns and not old.returns.is_generator else ""
        ) or "The result."
    yields = ""
    if target.yields:
        yields = (
            old.returns.description if old and old.returns and old.returns.is_generator else ""
        ) or "The yielded values."
    old_raises = (
        {(r.type_name or "").rsplit(".", 1)[-1]: r.description or "" for r in old.raises}
        if old
        else {}
    )
    raises = tuple(
        (name, old_raises.get(name.rsplit(".", 1)[-1]) or "Raised on error.")
        for name in target.raises
    )
    return DocParts(
        summary=summary,
        description=description,
        params=params,
        returns=returns,
        yields=yields,
        raises=raises,
    )


class OfflineProvider:
    """No network, no key: signature-derived skeletons, the same every time."""

    name = "offline"
    model = "offline"
    offline = True

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        parts = {i.target.id: offline_parts(i.target, i.mood) for i in request.items}
        return GenerationResult(parts, {}, Usage(0, 0), self.model)
