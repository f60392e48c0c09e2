"""Update a stale docstring in place: keep what is still true, byte for byte.

A docstring whose parameters disagree with the signature is not rewritten.  Its raw
source lines (the literal exactly as in the file) are located into sections and
entries (:mod:`bot.docstrings.doclayout`); then only what has to change changes
(:mod:`bot.docstrings.merge`), and the result must read back as a string literal.  When the
structure cannot be located safely, :class:`~bot.docstrings.doclayout.Unlocatable` says why and
the caller regenerates instead.  :func:`needed` tells the model which entries to write.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.docstrings.doclayout import Unlocatable, locate
from bot.docstrings.merge import merge, needed_raises, renamed_params
from bot.docstrings.models import DocParts, Style, Target

DEFAULT_WIDTH = 88
CLASS_WITHOUT_INIT = "a class documents its __init__'s parameters, not among the PR's changes"
MIN_WIDTH = 72


# -------------------------------------------------------------------- the width


def file_width(text: str) -> int:
    """The column the file wraps its docstrings at (else its code), as it is written.

    The longest line of the module's docstrings; without docstrings, of its code;
    at least :data:`MIN_WIDTH`.
    """
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return DEFAULT_WIDTH
    spans: list[int] = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body or not isinstance(body[0], ast.Expr):
            continue
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            spans.extend(range(value.lineno, (value.end_lineno or value.lineno) + 1))
    pool = [lines[n - 1] for n in spans if n - 1 < len(lines)] or lines
    widths = [len(line.rstrip().expandtabs(4)) for line in pool]
    # Short docstrings show no wrap column at all: never narrower than PEP 8's limit
    # for docstrings, https://peps.python.org/pep-0008/#maximum-line-length
    return max(max(widths, default=DEFAULT_WIDTH), MIN_WIDTH)


# ------------------------------------------------------------------ the literal

_OPENING = re.compile(r"(?P<prefix>[rRuU]{0,2})(?P<quote>\"\"\"|'''|\"|')")


@dataclass
class Update:
    """An updated docstring: the edit's lines, the new docstring text, what changed,
    and the lines docgen wrote (the rest were the maintainer's, already in the file)."""

    start: int
    end: int
    lines: list[str]
    text: str
    summary: str
    written: str = ""


def literal_lines(target: Target, head_lines: Sequence[str]) -> tuple[list[str], int, str]:
    """The docstring literal's raw lines as in the file, the column its quotes open
    at, and what follows its closing quotes on the last line (a comment, say)."""
    if target.docstring_span is None or target.docstring_cols is None:
        raise Unlocatable("the docstring's place in the file is unknown")
    start, end = target.docstring_span
    begin, finish = target.docstring_cols
    raw = list(head_lines[start - 1 : end])
    tail = raw[-1][finish:]
    raw[-1] = raw[-1][:finish]
    return raw, begin, tail


def update_docstring(
    target: Target,
    head_lines: Sequence[str],
    style: Style,
    parts: DocParts,
    width: int,
    gone_raises: Collection[str] = (),
) -> Update:
    """Merge what ``target``'s stale docstring lacks into its own lines.

    Raises :class:`Unlocatable` (regenerate instead) or :class:`MissingText` (the
    answer lacks an entry's text).
    """
    if target.kind == "class" and not target.params:
        # A class is merged against its __init__'s parameters (the caller puts them
        # in), known only when the PR touched __init__.
        raise Unlocatable(CLASS_WITHOUT_INIT)
    raw, begin, tail = literal_lines(target, head_lines)
    opening = _OPENING.match(raw[0], begin)
    if opening is None or len(opening["quote"]) != 3:
        raise Unlocatable("the docstring is not a triple-quoted string")
    merged = merge(locate(raw, style), target, parts, width, gone_raises)
    if not merged.changes:
        # The stale judgement (docstring_parser's reading) saw more than the entries
        # located here: do not suggest the same lines back.
        raise Unlocatable("no entry found that disagrees with the signature")
    if any("\\" in line for line in merged.written) and "r" not in opening["prefix"].lower():
        raise Unlocatable("new text has a backslash and the docstring is not a raw string")
    source = "\n".join(merged.lines)[begin:]
    try:
        value = ast.literal_eval(source)
    except (SyntaxError, ValueError) as exc:
        raise Unlocatable(f"the updated literal does not read back: {exc}") from None
    if not isinstance(value, str):
        raise Unlocatable("the updated literal is not a string")
    start, end = target.docstring_span or (0, 0)
    out = list(merged.lines)
    out[-1] += tail
    written = "\n".join(merged.written)
    return Update(start, end, out, inspect.cleandoc(value), merged.summary, written)


# ------------------------------------------------------------------ the prompt


@dataclass(frozen=True)
class Ask:
    """What a model is asked for when a stale docstring is updated: the docstring
    as it stands (shown, kept) and only the entries it lacks."""

    docstring: str
    params: tuple[str, ...] = ()
    raises: tuple[str, ...] = ()


def needed(target: Target, head_lines: Sequence[str], style: Style) -> Ask | None:
    """The entries :func:`bot.docstrings.merge.merge` will need text for, or None when the docstring
    cannot be located (it is regenerated whole, and the model asked for all of it)."""
    if target.kind == "class" and not target.params:
        return None
    try:
        raw, _, _ = literal_lines(target, head_lines)
        layout = locate(raw, style)
    except Unlocatable:
        return None
    entries = layout.entries("params")
    documented = {e.name for e in entries} | set(
        renamed_params(entries, target.documentable_params).values()
    )
    params = tuple(
        p.name
        for p in target.documentable_params
        if p.name not in documented and p.kind not in ("vararg", "varkw")
    )
    have = {e.name.rsplit(".", 1)[-1] for e in layout.entries("raises")}
    raises = tuple(r for r in needed_raises(target) if r.rsplit(".", 1)[-1] not in have)
    # A dry run: an update that cannot be placed is regenerated whole, and then the
    # model must be asked for everything.
    probe = DocParts(
        "-", params=tuple((n, "-") for n in params), raises=tuple((r, "-") for r in raises)
    )
    try:
        if not merge(layout, target, probe, DEFAULT_WIDTH).changes:
            return None
    except Unlocatable:
        return None
    return Ask(target.docstring or "", params, raises)
