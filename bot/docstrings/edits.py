"""Docstring text as a safe literal, the edit that puts it in, and applying edits.

A candidate docstring becomes source lines (:func:`literal_lines`) that cannot end the
literal early, in the file's own triple quote (:func:`file_quote`); :func:`make_edit`
places them in the definition's slot (:func:`edit_region`).  Edits are applied two
ways: the local way, keeping every byte outside them (:func:`apply_edits`, line endings
included), and the way GitHub commits a suggestion, on git's lines
(:func:`apply_suggestions`).  :mod:`bot.docstrings.proof` proves both are only docstrings.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from bot.docstrings.lines import LineMap, python_lines
from bot.docstrings.models import Decision, Edit, Target
from bot.docstrings.parsing import documented, parse_quietly
from bot.docstrings.validate import unsafe_reason

# ----------------------------------------------------------------- the literal


DOUBLE_QUOTES = '"""'
SINGLE_QUOTES = "'''"


def literal_lines(text: str, indent: str, quote: str = DOUBLE_QUOTES) -> list[str]:
    """The docstring as source lines, indented, with safe quoting.

    ``text`` is the cleaned content (first line = summary); ``quote`` the file's triple
    quote (:func:`file_quote`).  A raw string is used when the text has backslashes, so
    ``\\n`` in prose stays two characters.  The closing quotes go on their own line
    whenever the text spans lines or ends with a quote or backslash, so the literal can
    never end early.
    """
    if unsafe_reason(text):
        raise ValueError("unsafe docstring text")
    if quote not in (DOUBLE_QUOTES, SINGLE_QUOTES):
        raise ValueError(f"not a triple quote: {quote!r}")
    prefix = "r" if "\\" in text else ""
    lines = text.strip("\n").split("\n")
    lines = [line.rstrip() for line in lines]
    if len(lines) == 1 and not lines[0].endswith(('"', "'", "\\")):
        return [f"{indent}{prefix}{quote}{lines[0]}{quote}"]
    out = [f"{indent}{prefix}{quote}{lines[0]}"]
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f"{indent}{quote}")
    return out


@functools.lru_cache(maxsize=16)
def file_quote(text: str) -> str:
    """The triple quote the file's docstrings are written with: ``'''`` only when
    most of them use it (black and ruff write ``\"\"\"``, as PEP 257 asks)."""
    try:
        tree = parse_quietly(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return DOUBLE_QUOTES
    lines = text.splitlines()
    votes: Counter[str] = Counter()
    for _, doc in documented(tree):
        if doc.lineno <= len(lines):
            line = lines[doc.lineno - 1].encode()[doc.col_offset :].decode("utf-8", "replace")
            votes[line.lstrip("rRuUbB")[:3]] += 1
    return SINGLE_QUOTES if votes[SINGLE_QUOTES] > votes[DOUBLE_QUOTES] else DOUBLE_QUOTES


def blank_after(target: Target, head_lines: Sequence[str]) -> bool:
    """True when a new docstring for ``target`` needs a blank line after it.

    Black and ruff's formatter put exactly one empty line after a class docstring
    (black's "blank line after class docstring", stable since 24.1.0); a file that was
    clean under them stays clean only if the suggestion adds it.  Function docstrings
    need none.
    https://black.readthedocs.io/en/stable/the_black_code_style/current_style.html#empty-lines
    """
    if target.kind != "class" or target.decision == Decision.STALE:
        return False
    after = target.header_end  # 0-based index of the line after the header
    return after < len(head_lines) and head_lines[after].strip() != ""


def edit_region(target: Target) -> tuple[int, int] | str:
    """The head lines a suggestion for ``target`` must replace, or why it can't.

    A missing docstring goes after the header's last line, so the suggestion replaces
    that line with itself plus the docstring.  A stale one replaces its own lines.
    """
    if target.decision == Decision.STALE and target.docstring_span is not None:
        start, end = target.docstring_span
        if start <= target.header_end:
            return "docstring shares a line with the definition header"
        return (start, end)
    if target.docstring_span is not None:
        return "already has a docstring"
    if target.body_start <= target.header_end:
        return "body on the same line as the header"
    return (target.header_end, target.header_end)


def make_edit(
    target: Target, text: str, head_lines: Sequence[str], quote: str = DOUBLE_QUOTES
) -> Edit:
    """The :class:`Edit` that puts ``text`` in as ``target``'s docstring.

    ``head_lines`` are the head file's lines (Python's) without line endings.  A stale
    docstring's lines are replaced whole, so whatever shares them with the old literal
    — the text before it, a ``; statement`` or a comment after it — is carried over
    onto the new literal's first and last line.  A new class docstring is followed by
    an empty line when the body does not start with one (:func:`blank_after`), so a
    formatter-clean file stays clean.  Raises ValueError when the definition has no
    place a suggestion can safely target.
    """
    region = edit_region(target)
    if isinstance(region, str):
        raise ValueError(region)
    start, end = region
    new = literal_lines(text, target.body_indent, quote)
    if target.decision == Decision.STALE and target.docstring_span is not None:
        first, last = head_lines[start - 1], head_lines[end - 1]
        begin, finish = target.docstring_cols or (len(first) - len(first.lstrip()), len(last))
        new[0] = first[:begin] + new[0][len(target.body_indent) :]
        new[-1] += last[finish:]
        return Edit(start, end, tuple(new))
    blank = ("",) if blank_after(target, head_lines) else ()
    return Edit(start, end, (head_lines[start - 1], *new, *blank))


# --------------------------------------------------------------- applying edits


def newline_of(text: str) -> str:
    """The file's line ending: that of its first line (CRLF stays CRLF).

    A lone ``\\r`` counts only in a file without ``\\n``: in a ``\\n`` file it is a
    stray (an old Mac line ending in a comment), and new lines ending with it would
    not be lines for git or GitHub.
    """
    m = re.search(r"\r?\n", text) or re.search(r"\r", text)
    return m.group(0) if m else "\n"


def git_span(edit: Edit, lines: LineMap) -> tuple[int, int]:
    """The git lines (GitHub's ``start_line``..``line``) an edit's Python lines are."""
    return lines.git(edit.start), lines.git(edit.end)


def apply_suggestions(text: str, suggestions: Iterable[tuple[int, int, Sequence[str]]]) -> str:
    """``text`` after GitHub commits ``(start_line, line, new lines)`` suggestions.

    GitHub's lines are git's: the blob split at ``\\n`` only; a suggestion replaces
    lines ``start_line``..``line`` with the lines of its block, joined by ``\\n``.
    https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request#applying-suggested-changes
    """
    lines = text.split("\n")
    for start, end, new in sorted(suggestions, key=lambda s: s[0], reverse=True):
        lines[start - 1 : end] = new
    return "\n".join(lines)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping line edits; every byte outside them is kept as it was.

    New lines take the ending of the last line they replace (or the file's), so a CRLF
    file stays CRLF and a file without a final newline keeps that.
    """
    lines = python_lines(text)
    nl = newline_of(text)
    ordered = sorted(edits, key=lambda e: e.start, reverse=True)
    last_start = None
    for edit in ordered:
        if last_start is not None and edit.end >= last_start:
            raise ValueError("overlapping edits")
        if not 1 <= edit.start <= edit.end <= len(lines):
            raise ValueError(f"edit {edit.start}-{edit.end} outside the file ({len(lines)} lines)")
        old_last = lines[edit.end - 1]
        ending = old_last[len(old_last.rstrip("\r\n")) :]
        replacement = [line + nl for line in edit.lines[:-1]] + [edit.lines[-1] + ending]
        lines[edit.start - 1 : edit.end] = replacement
        last_start = edit.start
    return "".join(lines)
