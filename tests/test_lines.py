"""bot.docstrings.lines against Python's and git's own line splitting.

The oracles: ``io.StringIO(text, newline="")`` yields the lines Python's tokenizer sees
(it ends a line at ``\\n``, ``\\r\\n`` and a lone ``\\r``, and translates nothing), and
``text.split("\\n")`` the lines git and GitHub count.
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.docstrings.lines import LineMap, python_lines

ALPHABET = st.sampled_from(
    ["a", " ", "#", "\n", "\r", "\r\n", "\x0c", "\x0b", "\x1c", "\x85", "\u2028"]
)


def oracle(text: str) -> list[tuple[int, int]]:
    """(python line, git line) of every Python line, from the stdlib and str.split."""
    out, offset = [], 0
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        out.append((number, text.count("\n", 0, offset) + 1))
        offset += len(line)
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_line_map_agrees_with_python_and_git(text: str) -> None:
    lines = LineMap(text)
    pairs = oracle(text)
    assert python_lines(text) == list(io.StringIO(text, newline=""))
    for py, git in pairs:
        assert lines.git(py) == git
        assert py in lines.py_lines(git)
    git_lines = text.split("\n")
    for git in range(1, len(git_lines) + 1):
        held = [py for py, g in pairs if g == git]
        if held:
            assert lines.py_first(git) == held[0]
            assert list(lines.py_lines(git))[: len(held)] == held
        segment = git_lines[git - 1]
        if git < len(git_lines) and segment.endswith("\r"):
            segment = segment[:-1]  # \r\n: the \n ended the line
        lone = "\r" in segment
        assert (lines.lone_cr(git, git) == git) == lone
    assert lines.identity == ("\r" not in text.replace("\r\n", ""))


def test_only_a_lone_cr_makes_the_numberings_differ() -> None:
    text = "a\x0cb\n\u2028c\r\nd\x85\ne\rf\ng\n"
    lines = LineMap(text)
    assert [lines.git(p) for p in range(1, 7)] == [1, 2, 3, 4, 4, 5]
    assert lines.lone_cr(1, 3) is None and lines.lone_cr(1, 4) == 4
    assert list(lines.py_lines(4)) == [4, 5] and lines.py_set([4, 5]) == [4, 5, 6]
