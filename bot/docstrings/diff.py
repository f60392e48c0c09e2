"""GitHub ``patch`` hunks → the head-file lines a review comment may target.

The pull-request files endpoint returns, per file, a unified-diff ``patch`` made of
hunks only (no ``diff --git`` / ``---`` / ``+++`` headers)::

    @@ -132,7 +132,7 @@ module Test
       context
    -  old line
    +  new line

https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files

Review comments are placed on the RIGHT (head) side: a single-line comment may target
any context or added line of a hunk, and a multi-line comment (``start_line``..``line``)
must lie inside one hunk.
https://docs.github.com/en/rest/pulls/comments#create-a-review-comment-for-a-pull-request

Everything here is pure: strings in, :class:`~bot.docstrings.models.Hunk` values out.  Garbage
raises :class:`PatchError`, which callers turn into a skip reason for the file.
"""

from __future__ import annotations

import re

from bot.docstrings.models import FileDiff, Hunk

__all__ = ["PatchError", "file_diff", "parse_patch"]

# ``@@ -l,s +r,s @@ optional section heading``; a count omitted means 1.
# https://www.gnu.org/software/diffutils/manual/html_node/Detailed-Unified.html
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@.*$")

# Lines ``git diff`` prints before the first hunk of a file.  GitHub's ``patch`` field
# never has them, but a local reader may hand us ``git diff`` output as is.
_GIT_FILE_HEADERS = (
    "diff --git ",
    "index ",
    "--- ",
    "+++ ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
)

# Removed, added or context lines can all be followed by this marker; it is not a line
# of either file.
_NO_NEWLINE = "\\"


class PatchError(ValueError):
    """A ``patch`` that is not a well-formed sequence of unified-diff hunks."""


def _preview(line: str, limit: int = 60) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")


def _split_lines(patch: str) -> list[str]:
    """Split on ``\\n`` only, dropping one ``\\r`` before it (CRLF patches).

    ``str.splitlines`` would also split on form feeds, ``\\x1c``..``\\x1e``, ``\\x85``
    and U+2028/9, which can occur inside a line of the diffed file.
    """
    lines = patch.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the text ended with a newline
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_patch(patch: str | None) -> tuple[Hunk, ...]:
    """Parse a GitHub ``patch`` into hunks seen from the RIGHT (head) side.

    Context (``' '``) and added (``'+'``) lines are RIGHT-side lines; removed (``'-'``)
    lines advance the left side and are kept with their RIGHT-side position (the head
    line they sit just before: after a hunk's last line, one past it); ``\\ No newline at end of file`` is ignored.  An
    empty line inside a hunk is taken as an empty context line (some tools strip the
    trailing space).  ``None`` or an empty patch gives ``()``.

    Raises:
        PatchError: a malformed hunk header, a line that is not part of any hunk, or a
            hunk with fewer or more lines than its header announces.
    """
    if not patch:
        return ()
    reader = _HunkReader()
    for number, line in enumerate(_split_lines(patch), start=1):
        if line.startswith("@@"):
            reader.header(number, line)
        elif reader.header_at:
            reader.line(number, line)
        elif not line.strip() or line.startswith(_GIT_FILE_HEADERS):
            continue
        else:
            raise PatchError(f"expected a hunk header at patch line {number}, got {_preview(line)}")
    reader.close()
    return tuple(reader.hunks)


class _HunkReader:
    """The hunks read so far and the one being read, line by line."""

    def __init__(self) -> None:
        self.hunks: list[Hunk] = []
        self.header_at = 0  # 1-based patch line of the current hunk header (0: none yet)
        self.right_start = self.right_count = 0
        self.left_left = self.right_left = 0  # lines still expected on each side
        self.right_line = 0
        self.lines: set[int] = set()
        self.added: set[int] = set()
        self.removed: list[tuple[int, str]] = []

    def close(self) -> None:
        """Finish the current hunk, if any; it must have every line its header announced."""
        if not self.header_at:
            return
        if self.left_left or self.right_left:
            raise PatchError(
                f"hunk at patch line {self.header_at} ends early: "
                f"{self.left_left} left-side and {self.right_left} right-side lines missing"
            )
        self.hunks.append(
            Hunk(
                self.right_start,
                self.right_count,
                frozenset(self.lines),
                frozenset(self.added),
                tuple(self.removed),
            )
        )

    def header(self, number: int, line: str) -> None:
        """Start a hunk at its ``@@`` header (closing the one before)."""
        match = _HUNK_HEADER.match(line)
        if match is None:
            raise PatchError(f"malformed hunk header at patch line {number}: {_preview(line)}")
        self.close()
        left_count = 1 if match[2] is None else int(match[2])
        right_start = int(match[3])
        right_count = 1 if match[4] is None else int(match[4])
        if right_count and not right_start:
            raise PatchError(
                f"hunk header at patch line {number} has lines starting at line 0: {_preview(line)}"
            )
        self.header_at = number
        self.right_start, self.right_count = right_start, right_count
        self.left_left, self.right_left = left_count, right_count
        # With no RIGHT-side lines, the header names the line the hunk follows.
        self.right_line = right_start if right_count else right_start + 1
        self.lines, self.added, self.removed = set(), set(), []

    def line(self, number: int, line: str) -> None:
        """One line inside a hunk: removed, context, added or a no-newline marker."""
        tag = line[:1]
        if tag == _NO_NEWLINE:
            return
        if tag == "-":
            if not self.left_left:
                raise PatchError(f"hunk at patch line {self.header_at} has too many removed lines")
            self.left_left -= 1
            # A removed line sits just before the next RIGHT-side line of the hunk.
            self.removed.append((self.right_line, line[1:]))
            return
        if tag not in (" ", "+", ""):
            raise PatchError(f"unexpected line in hunk at patch line {number}: {_preview(line)}")
        if not self.right_left or (tag != "+" and not self.left_left):
            if tag == "" and not self.right_left and not self.left_left:
                return  # blank line after a complete hunk: harmless trailing whitespace
            raise PatchError(
                f"hunk at patch line {self.header_at} has more lines than its header "
                f"announces (patch line {number})"
            )
        self.lines.add(self.right_line)
        if tag == "+":
            self.added.add(self.right_line)
        else:
            self.left_left -= 1
        self.right_left -= 1
        self.right_line += 1


def file_diff(
    path: str, status: str, patch: str | None, previous_path: str | None = None
) -> FileDiff:
    """The :class:`~bot.docstrings.models.FileDiff` of one entry of the PR's files list.

    GitHub leaves ``patch`` out for binary files and for diffs too large to show
    (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files), so a missing
    patch means "not reviewable" — except for a removed file, which has no RIGHT side to
    review anyway.

    Raises:
        PatchError: the patch is malformed (see :func:`parse_patch`).
    """
    return FileDiff(
        path=path,
        status=status,
        previous_path=previous_path,
        hunks=parse_patch(patch),
        has_patch=patch is not None or status == "removed",
    )
