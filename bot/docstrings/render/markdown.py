"""Untrusted text as inert GitHub Markdown, and sizes as GitHub counts them (UTF-8 bytes).

Names, paths, reasons and docstrings come from the pull request or the model: shown on
GitHub they go in code spans or are escaped so they cannot ping, reference, link or
carry HTML (:func:`inline`, :func:`code_span`, :func:`fence_for`).  GitHub's limits on
check-run text count bytes, not characters (:func:`utf8_size`, :func:`cap_bytes`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CELL_LIMIT = 300  # characters of a note in a table cell or list item

# ------------------------------------------------------------------ sizes


def utf8_size(text: str) -> int:
    """The size GitHub gives ``text``: its UTF-8 bytes (a lone surrogate counts 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of at most ``limit`` UTF-8 bytes (whole characters)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    # A character's continuation bytes are 0b10xxxxxx: back up to the start of the
    # character the cut falls in, so no character is split.
    end = max(limit, 0)
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")


def cap_bytes(text: str, limit: int, suffix: str = "…") -> str:
    """``text`` itself when it fits in ``limit`` bytes, else cut with ``suffix`` appended."""
    if utf8_size(text) <= limit:
        return text
    return cut_to_bytes(text, limit - utf8_size(suffix)) + suffix


# ------------------------------------------------------------- markdown helpers

# Text from the PR (names, paths, existing docstrings, config) or from the model is
# untrusted: shown in Markdown it must not ping, reference or link anyone, nor carry
# HTML or images.  Names go in code spans (GitHub renders nothing inside code); prose
# is escaped character by character, and the triggers GitHub acts on in rendered text —
# @mentions, #123 / GH-123 references, autolinked URLs and e-mail addresses — are
# broken with an invisible WORD JOINER.  A backslash is not enough there: GitHub finds
# mentions and references in the text after Markdown removed the backslash.
# https://docs.github.com/en/get-started/writing-on-github/getting-started-with-writing-and-formatting-on-github/autolinked-references-and-urls
# https://github.github.com/gfm/#autolinks-extension-
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!])")
_WJ = "\u2060"
# The end too: "www" or "gh" must not become "www." or "gh-1" with what follows.
_TRIGGERS = re.compile(r"(?i)@|#|(?<=gh)-(?=\d)|(?=:/)|(?<=www)\.|(?<=www)\Z|(?<=gh)\Z|:\Z")
_BREAK = {
    "@": f"{_WJ}@{_WJ}",
    "#": f"#{_WJ}",
    "-": f"{_WJ}-",
    "": _WJ,
    ".": f"{_WJ}.",
    ":": f"{_WJ}:",
}
_QUOTED = re.compile(r"`([^`]+)`")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def shorten(text: str, limit: int = CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _escaped(text: str) -> str:
    """One line of untrusted text as inert inline Markdown (no markup, links, pings)."""
    text = _MD_SPECIAL.sub(r"\\\1", text).replace("&", "&amp;")
    return _TRIGGERS.sub(lambda m: _BREAK[m.group()], text)


def inline(text: str, limit: int = CELL_LIMIT, *, in_table: bool = False) -> str:
    """Untrusted text as inline Markdown: one line, `quoted` parts as code, the rest inert.

    Reasons quote names in backticks ("documents `key` but ..."): those parts become
    code spans of their own, whatever backticks the names hold.
    """
    text = shorten(one_line(text), limit)
    out, last = [], 0
    for m in _QUOTED.finditer(text):
        # Two spans must not touch: their fences would merge into one longer run.
        between = _escaped(text[last : m.start()]) or (_WJ if out else "")
        out += [between, code_span(m.group(1), in_table=in_table, limit=limit)]
        last = m.end()
    out.append(_escaped(text[last:]))
    return "".join(out)


def inline_text(text: str, limit: int = 2_000) -> str:
    """Untrusted prose (an error message, a note) as inert inline Markdown."""
    return inline(text, limit)


def code_span(text: str, *, in_table: bool = False, limit: int = CELL_LIMIT) -> str:
    """Untrusted text (a name, a path, a word of a command) as one inline code span.

    The fence is longer than any backtick run inside; ``in_table`` escapes pipes too.
    """
    # An empty span would be a bare fence that pairs with the next span's: a space.
    text = shorten(one_line(text), limit) or " "
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    # In a table even a pipe inside a code span must be escaped:
    # https://github.github.com/gfm/#tables-extension-
    return span.replace("|", "\\|") if in_table else span


def fence_for(lines: Sequence[str]) -> str:
    """A backtick fence longer than any run of backticks in ``lines`` (at least 3)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)
