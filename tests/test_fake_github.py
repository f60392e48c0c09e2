"""The fake GitHub holds the bot to GitHub's rules, derived without the bot's code.

Oracles here: real ``git`` (``hash-object``, ``diff``, ``apply``), the file's bytes split
at "\\n", and GitHub's documented 422 answers.  The fake must never import ``bot``.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.fake_github as fake_module
from tests.conftest import OWNER, REPO
from tests.fake_github import (
    FakeGitHub,
    GitDiffer,
    apply_suggestion_lines,
    diff_hunks,
    git_blob_sha,
    suggestion_block,
)

REVIEWS = f"/repos/{OWNER}/{REPO}/pulls/1/reviews"


def _imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


def test_the_fake_does_not_import_the_bot():
    """A fake that asks bot.* what is right proves nothing about bot.*."""
    modules = list(_imported(ast.parse(Path(fake_module.__file__).read_text())))
    assert "jwt" in modules  # the walk sees the imports
    assert [m for m in modules if m == "bot" or m.startswith("bot.")] == []


# ----------------------------------------------------------------------- patches


@pytest.fixture(scope="module")
def git() -> GitDiffer:
    return GitDiffer()


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ("a\nb\nc\n", "a\nB\nc\n", "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c"),
        (None, "x\ny\n", "@@ -0,0 +1,2 @@\n+x\n+y"),
        ("x\n", None, "@@ -1 +0,0 @@\n-x"),
        (
            "a",
            "b",
            "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file",
        ),
        # git names the enclosing definition after the second "@@" (its funcname line)
        (
            "def f():\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n",
            "def f():\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 6\n",
            "@@ -3,4 +3,4 @@ def f():\n     b = 2\n     c = 3\n     d = 4\n-    e = 5\n+    e = 6",
        ),
        # CR stays inside its line: git and GitHub end lines at "\n" only
        ("a\r\nb\r\n", "a\r\nB\r\n", "@@ -1,2 +1,2 @@\n a\r\n-b\r\n+B\r"),
        ("# x\ry\nz\n", "# x\ry\nZ\n", "@@ -1,2 +1,2 @@\n # x\ry\n-z\n+Z"),
        (b"\x00bin", b"\x00bin2", None),
        (b"caf\xe9\n", b"cafe\n", None),  # not UTF-8: no patch, as for binary files
        ("same\n", "same\n", None),
        (None, "", None),  # an empty file added: nothing to show
    ],
    ids=[
        "modified",
        "added",
        "removed",
        "no-newline",
        "funcname",
        "crlf",
        "lone-cr",
        "binary",
        "latin-1",
        "unchanged",
        "empty-added",
    ],
)
def test_patches_are_git_diff_without_headers(git, old, new, patch):
    enc = [s.encode() if isinstance(s, str) else s for s in (old, new)]
    assert git.patch(*enc) == patch


def test_blob_ids_are_gits(git):
    for data in (b"", b"x = 1\n", b"\x00\xff", "é\r\n".encode()):
        assert git.blob(data) == git_blob_sha(data)


def test_a_patch_applies_with_git_apply(tmp_path, git):
    """GitHub's `patch` plus the headers it drops is a patch `git apply` accepts."""
    old = "".join(f"line {i}\n" for i in range(1, 40)).encode()
    new = old.replace(b"line 5\n", b"line five\n").replace(b"line 30\n", b"")
    patch = git.patch(old, new)
    assert patch is not None and patch.count("\n@@ ") == 1  # two hunks
    (tmp_path / "f.txt").write_bytes(old)
    full = f"--- a/f.txt\n+++ b/f.txt\n{patch}\n"
    subprocess.run(["git", "apply", "-"], input=full.encode(), cwd=tmp_path, check=True)
    assert (tmp_path / "f.txt").read_bytes() == new


# --------------------------------------------------------------------- hunks

_LINE_BREAKERS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def _git_lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(["a", "b", " ", "#", "\r", *_LINE_BREAKERS]), max_size=6),
        min_size=1,
        max_size=30,
    ),
    st.data(),
)
def test_hunk_lines_are_the_head_files_git_lines(git, lines, data):
    """Every RIGHT-side line of a hunk is the head's git line of that number, byte for byte."""
    base = "\n".join(lines) + "\n"
    head_lines = list(lines)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(head_lines) - 1))
        head_lines[i] = data.draw(st.sampled_from(["X", "\x0cY", "Z\r", "\u2028"]))
    head = "\n".join(head_lines) + "\n"
    patch = git.patch(base.encode(), head.encode())
    numbered = _git_lines(head.encode())
    for hunk in diff_hunks(patch):
        for text, number in zip(hunk.lines, hunk.right, strict=True):
            if number is not None:
                assert text[1:].encode() == numbered[number - 1]


def test_hunks_of_a_two_hunk_patch():
    patch = "@@ -1,3 +1,4 @@\n a\n+b\n c\n-d\n@@ -10 +11,0 @@ def f():\n-gone"
    first, second = diff_hunks(patch)
    assert first.right_lines == {1, 2, 3} and second.right_lines == frozenset()
    assert first.text_through(2) == "@@ -1,3 +1,4 @@\n a\n+b"


def test_no_patch_no_hunks():
    assert diff_hunks(None) == () and diff_hunks("") == ()


# ------------------------------------------------------------ review comments


def post_review(fake: FakeGitHub, comments: list[dict[str, Any]]) -> httpx.Response:
    """POST a review to the fake as an installation would (its token, its head sha)."""
    token = "ghs_" + "t" * 36
    fake.tokens[token] = (1, time.time() + 3600)
    pull = fake.repo(f"{OWNER}/{REPO}").pulls[1]
    body = {"commit_id": pull.head_sha, "event": "COMMENT", "comments": comments}

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=fake.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.github.com"
        ) as client:
            return await client.post(
                REVIEWS, json=body, headers={"authorization": f"token {token}"}
            )

    return asyncio.run(go())


def comment(line: int, start: int | None = None, body: str = "note") -> dict[str, Any]:
    out: dict[str, Any] = {"path": "m.py", "body": body, "line": line, "side": "RIGHT"}
    if start is not None:
        out.update(start_line=start, start_side="RIGHT")
    return out


def errors(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return response.json()["errors"]


BASE = "".join(f"x{i} = {i}\n" for i in range(1, 31))


def test_comments_on_context_and_added_lines_are_taken(fake_github, make_pr):
    make_pr({"m.py": BASE}, {"m.py": BASE.replace("x5 = 5\n", "x5 = 'five'\nx5b = 0\n")})
    # hunk: context 2-4, added 5-6, context 7-9 (head numbering)
    response = post_review(fake_github, [comment(2), comment(6, start=5), comment(9, start=2)])
    assert response.status_code == 200, response.text
    stored = fake_github.repo(f"{OWNER}/{REPO}").pulls[1].comments
    assert (
        stored[1]["diff_hunk"]
        == "@@ -2,7 +2,8 @@ x1 = 1\n x2 = 2\n x3 = 3\n x4 = 4\n-x5 = 5\n+x5 = 'five'\n+x5b = 0"
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (comment(1), "pull_request_review_thread.line must be part of the diff"),
        (comment(10), "pull_request_review_thread.line must be part of the diff"),
        (
            comment(26, start=6),
            "pull_request_review_thread.start_line must be part of the same hunk as the line.",
        ),
        (
            comment(6, start=1),
            "pull_request_review_thread.start_line must be part of the same hunk as the line.",
        ),
        ({**comment(6), "path": "other.py"}, "Path could not be resolved"),
        (comment(6, body=" "), "Body can't be blank"),
    ],
    ids=["above", "between-hunks", "across-hunks", "start-outside", "path", "blank"],
)
def test_one_bad_comment_refuses_the_whole_review(fake_github, make_pr, bad, message):
    """https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request"""
    head = BASE.replace("x5 = 5\n", "x5 = 'five'\n").replace("x25 = 25\n", "x25 = 0\n")
    make_pr({"m.py": BASE}, {"m.py": head})
    assert errors(post_review(fake_github, [comment(5), bad])) == [message]
    assert fake_github.repo(f"{OWNER}/{REPO}").pulls[1].comments == []


def test_a_removal_only_hunk_has_no_right_side_line(fake_github, make_pr):
    make_pr({"m.py": BASE}, {"m.py": BASE.replace("x30 = 30\n", "")})
    # the hunk shows head lines 27-29 as context; the removed line has no head number
    assert post_review(fake_github, [comment(29, start=27)]).status_code == 200
    assert errors(post_review(fake_github, [comment(30)])) == [
        "pull_request_review_thread.line must be part of the diff"
    ]


@pytest.mark.parametrize("breaker", _LINE_BREAKERS)
def test_lines_are_counted_at_newlines_only(fake_github, make_pr, breaker):
    """A line breaker other than "\\n" (as ast would count it) moves no comment."""
    base = f"# old{breaker}mac\n" + "".join(f"y{i} = {i}\n" for i in range(2, 12))
    head = base.replace("y8 = 8\n", "y8 = 'eight'\n")
    make_pr({"m.py": base}, {"m.py": head})
    # git's line 8 is the changed one, whatever Python's tokenizer thinks
    assert post_review(fake_github, [comment(8)]).status_code == 200
    assert errors(post_review(fake_github, [comment(4)])) == [
        "pull_request_review_thread.line must be part of the diff"
    ]


# ---------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        ('Doc:\n\n```suggestion\n    """Doc."""\n```\n<!-- m -->', ['    """Doc."""']),
        ("````suggestion\na ```b```\n````", ["a ```b```"]),
        ("```suggestion\r\nx\r\ny\r\n```\r\n", ["x", "y"]),  # typed in a browser
        ("```suggestion\n```", []),  # an empty suggestion deletes the lines
        ("```suggestion\nkept\n", ["kept"]),  # unclosed: the block runs to the end
        ("```python\nx\n```", None),
        ("no block", None),
    ],
    ids=["plain", "long-fence", "crlf-body", "empty", "unclosed", "other-info", "none"],
)
def test_suggestion_block(body, lines):
    assert suggestion_block(body) == lines


@pytest.mark.parametrize(
    ("data", "edits", "result"),
    [
        (b"a\nb\nc\n", [(2, 2, ["B", "B2"])], b"a\nB\nB2\nc\n"),
        (b"a\r\nb\r\nc\r\n", [(2, 2, ["B", "B2"])], b"a\r\nB\r\nB2\r\nc\r\n"),
        (b"a\nb", [(2, 2, ["B", "C"])], b"a\nB\nC"),  # last line without a newline
        (b"a\rx\nb\n", [(2, 2, ["B"])], b"a\rx\nB\n"),  # lone CR: still git's line 1
        (b"a\nb\nc\nd\n", [(1, 1, ["A"]), (3, 4, ["C"])], b"A\nb\nC\n"),
        (b"a\nb\nc\n", [(2, 3, [])], b"a\n"),
        ("é\nx\n".encode(), [(2, 2, ["ü"])], "é\nü\n".encode()),
    ],
    ids=["lf", "crlf", "no-final-newline", "lone-cr", "batch", "delete", "utf-8"],
)
def test_apply_suggestion_lines(data, edits, result):
    assert apply_suggestion_lines(data, edits) == result


@pytest.mark.parametrize(
    "edits", [[(1, 2, ["x"]), (2, 3, ["y"])], [(0, 1, ["x"])], [(3, 4, ["x"])]]
)
def test_apply_refuses_overlaps_and_lines_outside_the_file(edits):
    with pytest.raises(ValueError):
        apply_suggestion_lines(b"a\nb\nc\n", edits)


def test_apply_suggestions_commits_what_was_posted(fake_github, make_pr):
    head = "def f(x):\r\n    return x\r\n\r\n\r\ndef g():\r\n    pass\r\n"
    pull = make_pr({"m.py": ""}, {"m.py": head})
    doc = '```suggestion\ndef f(x):\n    """Return x."""\n```'
    assert post_review(fake_github, [comment(1, body=doc), comment(5)]).status_code == 200
    applied = fake_github.apply_suggestions(pull, "m.py")
    assert applied == head.replace("def f(x):\r\n", 'def f(x):\r\n    """Return x."""\r\n').encode()
    first, second = (c["id"] for c in pull.comments)
    assert fake_github.apply_suggestions(pull, "m.py", [first]) == applied
    assert fake_github.apply_suggestions(pull, "m.py", [second]) == head.encode()  # no block


def test_outdated_suggestions_cannot_be_applied(fake_github, make_pr):
    pull = make_pr({"m.py": ""}, {"m.py": "x = 1\n"})
    assert (
        post_review(fake_github, [comment(1, body="```suggestion\ny = 1\n```")]).status_code == 200
    )
    pull.head_sha = fake_github.add_commit(pull.repo, {"m.py": "x = 2\n"})
    with pytest.raises(ValueError, match="outdated"):
        fake_github.apply_suggestions(pull, "m.py")


def test_the_fake_clock_starts_in_the_past():
    """Assertions mixing it with real time would pass only until the clock's start date."""
    from tests.conftest import FakeClock

    assert FakeClock().time() < time.time()
