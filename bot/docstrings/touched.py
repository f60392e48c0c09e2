"""Which definitions a pull request touched, in git's view: a line added or removed.

:func:`changed_definitions` maps the diff's added and removed lines (git's numbers) to
Python's and picks the definitions they fall in (:func:`touched`); a deleted docstring
is recognised in the removed lines (:func:`docstring_removed`).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from bot.docstrings.definitions import Definition
from bot.docstrings.lines import LineMap
from bot.docstrings.models import FileDiff, Target
from bot.docstrings.source import Source


class Removed(dict[int, list[str]]):
    """Deleted blocks by the Python line they sat before, with sorted positions."""

    def __init__(self, blocks: dict[int, list[str]]) -> None:
        super().__init__(blocks)
        self.positions = sorted(blocks)

    def between(self, first: int, last: int) -> list[int]:
        """Positions ``first``..``last`` where a block was deleted."""
        positions = self.positions
        return positions[bisect_left(positions, first) : bisect_right(positions, last)]


def touched(record: Definition, added: list[int], removed: Removed, source: Source) -> bool:
    """Whether the PR added or removed a line of this definition.

    A function is touched by any added line in its span (decorators included), and by
    any line removed from it (:func:`_removed_own`).  A class only by lines of its own:
    header, decorators, or its body outside nested definitions — a change inside a
    method touches the method, not the class — and not by added or removed blank or
    comment lines (adding a method usually adds a blank line).
    """
    start, end = record.start, record.end
    index = bisect_left(added, start)
    if record.kind != "class":
        if index < len(added) and added[index] <= end:
            return True
        return _removed_touches(record, removed, source, ())
    spans = [(child.start, child.end) for child in record.children]
    for line in added[index:]:
        if line > end:
            break
        if any(first <= line <= last for first, last in spans):
            continue
        if line > record.node.lineno and source.is_filler(line):
            continue
        return True
    return _removed_touches(record, removed, source, spans)


def _removed_touches(
    record: Definition, removed: Removed, source: Source, spans: Sequence[tuple[int, int]]
) -> bool:
    """Whether a deleted block sat inside ``record`` (not inside one of ``spans``).

    A block sits *before* head line ``p``: strictly inside the definition when
    ``start < p <= end``.  At ``p == start`` it belongs to the definition only when it
    ends with a decorator at the definition's indentation; at ``p == end + 1`` only when
    its first code line is indented deeper than the ``def``/``class`` (the end of the
    body was deleted), not when it is the next statement or blank lines between.
    """
    if not removed:
        return False
    indent = source.indent(record.node.lineno)
    is_class = record.kind == "class"
    body_level = source.indent(record.node.body[0].lineno) if is_class else None
    for p in removed.between(record.start, record.end + 1):
        block = removed[p]
        if p == record.start:
            if _ends_with_decorator(block, indent):
                return True
        elif any(first < p <= last for first, last in spans):
            continue  # inside a nested definition: that one's change
        elif (p <= record.end and not is_class) or _removed_own(block, indent, body_level):
            return True
    return False


def _lead(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" \t\f"))]


def _is_code(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#")


def _ends_with_decorator(block: list[str], indent: str) -> bool:
    """The deleted block's last code line at ``indent`` is a decorator (``@...``)."""
    for text in reversed(block):
        if not _is_code(text):
            continue
        lead = _lead(text)
        if len(lead) > len(indent):
            continue  # a decorator's continuation line
        return lead == indent and text.lstrip(" \t\f").startswith("@")
    return False


_NESTED_DEF = re.compile(r"(?:@|def\b|async\s+def\b|class\b)")


def _removed_own(block: list[str], indent: str, body_level: str | None) -> bool:
    """Whether deleted lines below a definition's header were its own statements.

    The first code line at the definition's indentation or less ends its body.  For a
    class (``body_level`` is its body's indentation) only lines at that level count,
    and not a deleted nested definition (``@``/``def``/``class``): deeper lines belong
    to a method.
    """
    for text in block:
        if not _is_code(text):
            continue
        lead = _lead(text)
        if not (lead.startswith(indent) and len(lead) > len(indent)):
            return False
        if body_level is None:
            return True
        if len(lead) > len(body_level) or _NESTED_DEF.match(text.lstrip()):
            continue
        return True
    return False


# Where a docstring was deleted: a string literal opening a line of the deleted block.
_DOC_OPEN = re.compile(r"""[rRuU]?(?:\"\"\"|'''|"|')""")


def docstring_removed(target: Target, removed: Removed) -> bool:
    """Whether the PR deleted a docstring from this (now undocumented) definition.

    The deleted block sits between the header and the body's first statement (or just
    before the header when the header changed too: git prints a change's deleted lines
    before its added ones), and one of its lines, indented deeper than the ``def``,
    opens a string literal.
    """
    for p in removed.between(target.def_line, target.body_start):
        for text in removed[p]:
            lead = _lead(text)
            if (
                lead.startswith(target.indent)
                and len(lead) > len(target.indent)
                and _DOC_OPEN.match(text[len(lead) :])
            ):
                return True
    return False


def changed_definitions(
    defs: list[Definition], diff: FileDiff, source: Source
) -> tuple[list[int], Removed]:
    """Indexes of the definitions the diff touches, and its deleted blocks.

    The diff's (git's) line numbers are translated to Python's first: after a lone
    ``\\r`` they differ (:mod:`bot.docstrings.lines`).
    """
    lines = LineMap(source.text)
    added = lines.py_set(diff.added_lines)
    blocks: dict[int, list[str]] = {}
    for git_line, text in diff.removed_lines:
        blocks.setdefault(lines.py_first(git_line), []).append(text)
    removed = Removed(blocks)
    if not added and not removed:
        return [], removed
    chosen = [i for i, record in enumerate(defs) if touched(record, added, removed, source)]
    return chosen, removed
