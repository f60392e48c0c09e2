"""Python's line numbers and git's (GitHub's) for one file, and the map between them.

git, and GitHub with it, ends a line at ``\\n`` only: a review comment's ``line`` and
``start_line`` count ``\\n``-terminated lines of the blob, and a suggestion replaces
those lines.  Python's tokenizer also ends a line at a lone ``\\r`` (an old Mac line
ending), and ``ast`` line numbers follow the tokenizer.  After one lone ``\\r`` every
``ast`` line number is one higher than GitHub's for the same text; a suggestion placed
by ``ast``'s numbers would replace the wrong line.

Neither counts ``\\f``, ``\\x0b``, ``\\x1c``-``\\x1e``, ``\\x85`` or U+2028/U+2029 as a
line break (``str.splitlines`` does: it is used for neither numbering here).

:class:`LineMap` translates both ways; a git line may hold several Python lines (one
per lone ``\\r`` in it), a Python line always sits in exactly one git line.  Files
without a lone ``\\r`` — nearly all — take the identity map without building any table.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

__all__ = ["LineMap", "python_lines"]

# Python's line ends: \r\n, \r and \n (the tokenizer's; ``str.splitlines`` has more).
_PY_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LONE_CR = re.compile(r"\r(?!\n)")


def python_lines(text: str) -> list[str]:
    """``text`` split where Python ends lines (``\\n``, ``\\r\\n``, ``\\r``), endings kept."""
    return _PY_LINE.findall(text)


class LineMap:
    """Python line numbers ↔ git line numbers of one text (both 1-based)."""

    def __init__(self, text: str) -> None:
        # git line (1-based) of each lone \r, in order; empty for almost every file.
        self._cr_lines: list[int] = []
        if "\r" in text and text.count("\r") != text.count("\r\n"):
            self._build(text)

    def _build(self, text: str) -> None:
        git = 1
        last = 0
        for match in _LONE_CR.finditer(text):
            git += text.count("\n", last, match.start())
            last = match.start()
            self._cr_lines.append(git)
        # Python line p lies on git line p - (lone CRs before p's start); keep the Python
        # line numbers that *follow* each lone \r to translate with bisect.
        self._py_after_cr = [git_line + i + 1 for i, git_line in enumerate(self._cr_lines)]

    @property
    def identity(self) -> bool:
        """True when both numberings agree (no lone ``\\r``)."""
        return not self._cr_lines

    def git(self, py_line: int) -> int:
        """The git line that holds Python line ``py_line``."""
        if not self._cr_lines:
            return py_line
        return py_line - bisect_right(self._py_after_cr, py_line)

    def py_first(self, git_line: int) -> int:
        """The first Python line of git line ``git_line`` (one past the end: one past)."""
        if not self._cr_lines:
            return git_line
        # Lone CRs on lines before git_line each add one Python line.
        return git_line + bisect_left(self._cr_lines, git_line)

    def py_lines(self, git_line: int) -> range:
        """The Python lines git line ``git_line`` holds (one, plus one per lone ``\\r``)."""
        first = self.py_first(git_line)
        return range(first, first + 1 + self._cr_lines.count(git_line))

    def py_set(self, git_lines: Iterable[int]) -> list[int]:
        """Python lines of the given git lines, sorted (for diff lines vs ``ast`` spans)."""
        if not self._cr_lines:
            return sorted(git_lines)
        return sorted({p for g in git_lines for p in self.py_lines(g)})

    def lone_cr(self, first: int, last: int) -> int | None:
        """The first git line in ``first``..``last`` holding a lone ``\\r``, if any."""
        for line in self._cr_lines:
            if first <= line <= last:
                return line
        return None
