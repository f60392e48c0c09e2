"""bot.docstrings.diff: GitHub ``patch`` hunks → RIGHT-side lines a review comment may target."""

from __future__ import annotations

import difflib
import inspect
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.docstrings.diff import PatchError, file_diff, parse_patch
from bot.docstrings.models import Hunk

FIXTURES = Path(__file__).parent / "fixtures" / "diff"


def hunk(
    start: int,
    count: int,
    lines: range | set[int],
    added: range | set[int],
    removed: tuple[tuple[int, str], ...] = (),
) -> Hunk:
    return Hunk(start, count, frozenset(lines), frozenset(added), removed)


# ----------------------------------------------------------------- small, readable cases

CASES = {
    "none": (None, ()),
    "empty": ("", ()),
    "one-modified-line": (
        "@@ -3,3 +3,3 @@ def f():\n a\n-b\n+B\n c\n",
        (hunk(3, 3, {3, 4, 5}, {4}, ((4, "b"),)),),
    ),
    "count-defaults-to-one": ("@@ -1 +1 @@\n-old\n+new\n", (hunk(1, 1, {1}, {1}, ((1, "old"),)),)),
    "new-file": ("@@ -0,0 +1,3 @@\n+a\n+b\n+c", (hunk(1, 3, {1, 2, 3}, {1, 2, 3}),)),
    "deletion-only-at-start": ("@@ -1,2 +0,0 @@\n-a\n-b\n", (hunk(0, 0, set(), set(), ((1, "a"), (1, "b"))),)),
    "deletion-inside": (
        "@@ -4,4 +4,2 @@\n keep\n-gone\n-gone too\n keep\n",
        (hunk(4, 2, {4, 5}, set(), ((5, "gone"), (5, "gone too"))),),
    ),
    "no-trailing-newline": ("@@ -1,2 +1,2 @@\n a\n-b\n+c", (hunk(1, 2, {1, 2}, {2}, ((2, "b"),)),)),
    "multiple-hunks": (
        "@@ -1,2 +1,3 @@\n a\n+x\n b\n@@ -10,2 +11,2 @@ class C:\n-c\n+C\n d\n",
        (hunk(1, 3, {1, 2, 3}, {2}), hunk(11, 2, {11, 12}, {11}, ((11, "c"),))),
    ),
    "no-newline-marker-on-both-sides": (
        "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n",
        (hunk(1, 2, {1, 2}, {2}, ((2, "b"),)),),
    ),
    "crlf-patch-text": (
        "@@ -1,3 +1,3 @@\r\n a\r\n-b\r\n+B\r\n c\r\n",
        (hunk(1, 3, {1, 2, 3}, {2}, ((2, "b"),)),),
    ),
    "blank-context-line-without-space": (
        "@@ -1,3 +1,3 @@\n a\n\n-c\n+C\n",
        (hunk(1, 3, {1, 2, 3}, {3}, ((3, "c"),)),),
    ),
    "form-feed-inside-a-line-is-not-a-break": (
        "@@ -1,2 +1,2 @@\n a\x0cstill a\n-b\n+B\n",
        (hunk(1, 2, {1, 2}, {2}, ((2, "b"),)),),
    ),
    "blank-line-after-the-last-hunk": ("@@ -1 +1 @@\n-a\n+b\n\n", (hunk(1, 1, {1}, {1}, ((1, "a"),)),)),
    "git-file-headers-are-tolerated": (
        "diff --git a/x.py b/x.py\nindex 83db48f..bf269f4 100644\n--- a/x.py\n+++ b/x.py\n"
        "@@ -1 +1 @@\n-a\n+b\n",
        (hunk(1, 1, {1}, {1}, ((1, "a"),)),),
    ),
}


@pytest.mark.parametrize(("patch", "expected"), CASES.values(), ids=CASES.keys())
def test_parse_patch(patch: str | None, expected: tuple[Hunk, ...]) -> None:
    assert parse_patch(patch) == expected


MALFORMED = {
    "garbage-header": ("@@ -x,1 +1 @@\n a\n", "malformed hunk header at patch line 1"),
    "header-missing-plus-side": ("@@ -1,2 @@\n a\n", "malformed hunk header"),
    "text-before-first-hunk": ("hello\n@@ -1 +1 @@\n a\n", "expected a hunk header"),
    "hunk-ends-early": ("@@ -1,3 +1,3 @@\n a\n", "ends early"),
    "hunk-longer-than-header": ("@@ -1,1 +1,1 @@\n a\n+b\n", "more lines than its header"),
    "too-many-removed-lines": ("@@ -1,1 +1,1 @@\n-a\n-b\n+c\n", "too many removed lines"),
    "unknown-line-tag": ("@@ -1,2 +1,2 @@\n a\n*b\n", "unexpected line in hunk"),
    "lines-starting-at-zero": ("@@ -1,1 +0,1 @@\n a\n", "starting at line 0"),
    # The literal ``patch`` of GitHub's docs example: two headers on one line and no
    # body, an illustration rather than a diff.
    # https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
    "github-docs-illustration": (
        "@@ -132,7 +132,7 @@ module Test @@ -1000,7 +1000,7 @@ module Test",
        "ends early",
    ),
}


@pytest.mark.parametrize(("patch", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_patch_raises_typed_error(patch: str, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        parse_patch(patch)


def test_patch_error_is_a_value_error() -> None:
    assert issubclass(PatchError, ValueError)


# ------------------------------------------------------------ a recorded pulls/files reply


def recorded_files() -> dict[str, dict]:
    """Shape of ``GET /repos/{owner}/{repo}/pulls/{n}/files`` (one page)."""
    entries = json.loads((FIXTURES / "pulls_files.json").read_text())
    return {entry["filename"]: entry for entry in entries}


def diff_of(entry: dict):
    return file_diff(
        entry["filename"], entry["status"], entry.get("patch"), entry.get("previous_filename")
    )


def test_recorded_modified_file_two_hunks_and_no_newline_marker() -> None:
    diff = diff_of(recorded_files()["bot/util.py"])
    assert diff.has_patch and diff.status == "modified"
    assert [(h.right_start, h.right_count) for h in diff.hunks] == [(10, 9), (42, 7)]
    assert diff.added_lines == {13, 14, 15, 44, 45, 46, 47, 48}
    # Every RIGHT-side line of a hunk is commentable; a span across hunks is not.
    assert diff.hunk_covering(12, 15) is diff.hunks[0]
    assert diff.hunk_covering(44, 48) is diff.hunks[1]
    assert diff.hunk_covering(18, 42) is None
    assert diff.hunk_covering(19, 19) is None


def test_recorded_binary_file_has_no_patch() -> None:
    diff = diff_of(recorded_files()["docs/logo.png"])
    assert not diff.has_patch and diff.hunks == ()


def test_recorded_removed_file_has_no_right_lines_but_counts_as_having_a_patch() -> None:
    diff = diff_of(recorded_files()["bot/legacy.py"])
    assert diff.has_patch
    assert diff.added_lines == frozenset() and all(not h.lines for h in diff.hunks)


def test_recorded_added_file_is_all_added() -> None:
    diff = diff_of(recorded_files()["bot/new_module.py"])
    assert diff.added_lines == {1, 2, 3} and diff.hunk_covering(1, 3) is not None


def test_recorded_pure_rename_keeps_previous_path() -> None:
    diff = diff_of(recorded_files()["bot/helpers.py"])
    assert diff.previous_path == "bot/helper.py"
    assert diff.status == "renamed" and diff.hunks == ()


def test_removed_file_without_patch_still_has_patch() -> None:
    assert file_diff("gone.py", "removed", None).has_patch


def test_file_diff_propagates_patch_error() -> None:
    with pytest.raises(PatchError):
        file_diff("x.py", "modified", "@@ nonsense @@\n")


# ------------------------------------------------------------------- real code as input


def unified_hunks(old: list[str], new: list[str], context: int = 3) -> str:
    """``difflib`` unified diff without the ``---``/``+++`` headers, as GitHub sends it."""
    lines = list(difflib.unified_diff(old, new, lineterm="", n=context))
    return "\n".join(lines[2:])


def expected_added(old: list[str], new: list[str]) -> set[int]:
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    added: set[int] = set()
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            added.update(range(j1 + 1, j2 + 1))
    return added


def check_against_head(patch: str, old: list[str], new: list[str]) -> None:
    hunks = parse_patch(patch)
    assert set().union(*(h.added for h in hunks)) == expected_added(old, new)
    for h in hunks:
        assert h.added <= h.lines
        assert len(h.lines) == h.right_count
        assert all(1 <= n <= len(new) for n in h.lines)
        if h.lines:  # a hunk's RIGHT lines are one contiguous block
            assert h.lines == set(range(min(h.lines), max(h.lines) + 1))


def test_against_a_real_edit_of_a_stdlib_module() -> None:
    old = inspect.getsource(textwrap).splitlines()
    new = list(old)
    new[10:10] = ["# a new comment", ""]  # insertion near the top
    new[200] = new[200] + "  # edited"  # a modification
    del new[300:305]  # a deletion
    new.extend(["", "def added():", "    return 1"])  # an addition at the end
    patch = unified_hunks(old, new)
    assert patch.count("\n@@") >= 3  # several hunks
    check_against_head(patch, old, new)


@settings(max_examples=150, deadline=None)
@given(
    old=st.lists(st.sampled_from("abcde"), max_size=30),
    new=st.lists(st.sampled_from("abcdef"), max_size=30),
    context=st.integers(min_value=0, max_value=3),
)
def test_matches_difflib_for_any_edit(old: list[str], new: list[str], context: int) -> None:
    check_against_head(unified_hunks(old, new, context), old, new)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="@-+ \\,0123456789\n\rabc", max_size=80))
def test_garbage_never_crashes(patch: str) -> None:
    try:
        hunks = parse_patch(patch)
    except PatchError:
        return
    for h in hunks:
        assert h.added <= h.lines


# ------------------------------------------------------------- removed lines, rebuilt


def rebuild_base(head: list[str], hunks) -> list[str]:
    """The base file from the head file and the hunks: drop added lines, put removed ones
    back before the head line each sat before.  Equal to the real base only when every
    removed line's position and text are right."""
    removed: dict[int, list[str]] = {}
    added: set[int] = set()
    for h in hunks:
        added |= h.added
        for position, text in h.removed:
            removed.setdefault(position, []).append(text)
    out: list[str] = []
    for number in range(1, len(head) + 2):
        out += removed.get(number, [])
        if number <= len(head) and number not in added:
            out.append(head[number - 1])
    return out


@settings(max_examples=150, deadline=None)
@given(
    old=st.lists(st.sampled_from("abcde"), max_size=30),
    new=st.lists(st.sampled_from("abcdef"), max_size=30),
    context=st.integers(min_value=0, max_value=3),
)
def test_removed_lines_rebuild_the_base_for_any_difflib_edit(old, new, context) -> None:
    hunks = parse_patch(unified_hunks(old, new, context))
    assert rebuild_base(new, hunks) == old


def test_removed_lines_rebuild_the_base_from_real_git_diffs() -> None:
    """``git diff -U3`` of real edits: deletions at the top, inside, at the end, a whole
    file emptied, lines with form feeds and U+2028 (not line breaks for git)."""
    from tests.realgit import git_patches

    def text(lines: list[str]) -> bytes:
        return "".join(line + "\n" for line in lines).encode()

    def lines_of(data: bytes) -> list[str]:
        return data.decode().split("\n")[:-1]

    source = inspect.getsource(textwrap).split("\n")[:-1]
    edits = {
        "inside.py": lambda lines: lines[:40] + lines[45:200] + ["x = 1"] + lines[203:],
        "top.py": lambda lines: lines[7:],
        "end.py": lambda lines: lines[:-30],
        "emptied.py": lambda lines: [],
        "odd.py": lambda lines: ["a\x0cb", "c\u2028d", *lines[3:60]],
    }
    base = {name: text(source) for name in edits}
    base["odd.py"] = text(["a\x0cb", "c\u2028d", "gone", *source[3:]])
    head = {name: text(edit(lines_of(base[name]))) for name, edit in edits.items()}
    patches = git_patches(base, head)
    assert set(patches) == set(edits)
    for name, patch in patches.items():
        old, new = lines_of(base[name]), lines_of(head[name])
        hunks = parse_patch(patch)
        assert any(h.removed for h in hunks), name
        assert rebuild_base(new, hunks) == old, name
