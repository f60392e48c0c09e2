"""Issue 14, parts 1-3, end to end: what git calls changed, where GitHub's lines are,
and what GitHub's commit of a suggestion does to the file.

Every PR here is a real ``git diff -U3`` of a repository built by the test
(:mod:`tests.realgit`), and every check is made with helpers written here, from git's
own rules, without ``bot``:

* :func:`right_ranges` reads only the ``@@`` headers of git's patch (invariant 2: a
  suggestion lies inside one hunk's RIGHT side);
* :func:`github_commit` applies a suggestion as GitHub commits one — the head blob
  split at ``\\n`` only, lines ``start_line..line`` replaced by the suggestion's lines;
* :func:`comments` lists a module's comments with stdlib ``tokenize``.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import re
import tokenize

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import RepoConfig
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.models import Action, FileChange, Outcome, Suggestion
from bot.docstrings.pipeline import RunResult, run
from bot.docstrings.render import checkrun, reports
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding
from tests.code_oracle import code_dump
from tests.realgit import git_patches

# ------------------------------------------------------------------ oracle helpers


def right_ranges(patch: str) -> list[range]:
    """The RIGHT-side line range of each hunk, from git's ``@@ -a,b +c,d @@`` headers."""
    out = []
    for match in re.finditer(r"(?m)^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", patch):
        start, count = int(match[1]), int(match[2] or 1)
        out.append(range(start, start + count))
    return out


def github_commit(head: bytes, suggestion: Suggestion) -> bytes:
    """``head`` after GitHub commits the suggestion: git's lines, split at ``\\n`` only."""
    lines = head.split(b"\n")
    body = [line.encode() for line in suggestion.body_lines]
    lines[suggestion.start - 1 : suggestion.end] = body
    return b"\n".join(lines)


def comments(text: str) -> list[str]:
    readline = io.StringIO(text, newline="").readline
    return [t.string for t in tokenize.generate_tokens(readline) if t.type == tokenize.COMMENT]


def docstrings(text: str) -> dict[str, str | None]:
    tree = ast.parse(text)
    return {
        node.name: ast.get_docstring(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def code_lines(text: bytes) -> list[bytes]:
    """Non-blank lines as git counts them, without a CRLF's ``\\r``."""
    return [line.rstrip(b"\r") for line in text.split(b"\n") if line.strip()]


def pr(base: dict[str, str], head: dict[str, str], config: RepoConfig | None = None):
    """Run the pipeline (offline) on the PR from ``base`` to ``head``, with git's patches."""
    raw_base = {path: text.encode() for path, text in base.items()}
    raw_head = {path: text.encode() for path, text in head.items()}
    patches = git_patches(raw_base, raw_head)
    changes = [
        FileChange(path, "added" if path not in base else "modified", patch, raw_head[path])
        for path, patch in patches.items()
    ]
    ctx = Context(
        config=config or RepoConfig(),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(50_000),
    )
    result: RunResult = asyncio.run(run(changes, ctx))
    return result, patches, raw_head


def suggestions(result: RunResult) -> dict[str, Outcome]:
    return {o.target.qualname: o for o in result.report.outcomes if o.suggestion is not None}


def assert_github_proof(result: RunResult, patches: dict[str, str], head: dict[str, bytes]):
    """Each suggestion lies in one hunk and, committed alone on GitHub, only adds or
    replaces its docstring: the file parses to the same code, keeps every comment, and
    a missing docstring's suggestion keeps every head line."""
    for o in result.report.outcomes:
        s = o.suggestion
        if s is None:
            continue
        assert any(s.start in r and s.end in r for r in right_ranges(patches[s.path])), s
        before, after = head[s.path], github_commit(head[s.path], s)
        new_text = after.decode()
        assert docstrings(new_text)[o.target.qualname.rsplit(".", 1)[-1]] == o.docstring
        assert code_dump(new_text) == code_dump(before.decode())
        assert comments(new_text) == comments(before.decode())
        if o.action == Action.ADDED:
            kept = code_lines(after)
            for line in code_lines(before):  # every head line is still there, in order
                assert line in kept, line
                kept = kept[kept.index(line) + 1 :]


# ------------------------------------------------------------ part 1: deletions


def _function(name: str, doc: str | None, body: str = "    value = x * 2\n    return value\n"):
    head = f"def {name}(x):\n"
    if doc:
        head += f'    """{doc}"""\n'
    return head + body


def test_stripping_eight_docstrings_and_adding_four_functions_gives_twelve_suggestions():
    names = [f"public_{i}" for i in range(8)]
    base = "\n\n".join(_function(n, f"Do {n} things.") for n in names)
    head = "\n\n".join(_function(n, None) for n in names)
    head += "\n\n" + "\n\n".join(_function(f"added_{i}", None) for i in range(4))
    result, patches, raw = pr({"pkg/m.py": base}, {"pkg/m.py": head})
    got = suggestions(result)
    assert sorted(got) == sorted(names + [f"added_{i}" for i in range(4)])
    for name in names:
        assert got[name].action == Action.ADDED
        assert got[name].reason == "docstring removed in this PR"
    assert all(got[f"added_{i}"].reason == "" for i in range(4))
    assert_github_proof(result, patches, raw)
    # The reason is shown in every report format.
    report = result.report
    assert "docstring removed in this PR" in checkrun.markdown_report(report)
    assert "docstring removed in this PR" in reports.text_report(report)
    reasons = {o["qualname"]: o["reason"] for o in reports.json_report(report)["outcomes"]}
    assert reasons["public_3"] == "docstring removed in this PR"
    json.dumps(reports.json_report(report))


def test_removed_docstrings_follow_the_skip_rules():
    base = (
        _function("_private", "Private.")
        + "\n\nclass Box:\n    def __len__(self):\n        '''Size.'''\n        return 1\n"
        + "\n\n"
        + _function("tiny", "Tiny.", body="    return x\n")
    )
    head = (
        _function("_private", None)
        + "\n\nclass Box:\n    def __len__(self):\n        return 1\n"
        + "\n\n"
        + _function("tiny", None, body="    return x\n")
    )
    result, _, _ = pr({"m.py": base}, {"m.py": head})
    outcomes = {o.target.qualname: o for o in result.report.outcomes}
    assert outcomes["_private"].action == Action.SKIPPED
    assert outcomes["_private"].reason == "private"
    assert outcomes["Box.__len__"].reason == "dunder method"
    assert outcomes["tiny"].reason == "trivial one-liner"
    config = RepoConfig(skip_private=False, skip_dunder=False, skip_trivial=False)
    result, patches, raw = pr({"m.py": base}, {"m.py": head}, config)
    got = suggestions(result)
    assert sorted(got) == ["Box.__len__", "_private", "tiny"]
    assert {o.reason for o in got.values()} == {"docstring removed in this PR"}
    assert_github_proof(result, patches, raw)


BODY = "    if x:\n        return 1\n    total = x + 1\n    return total\n"

DELETIONS = {
    # name: (base, head, expected suggestions)
    "a-branch-deleted-inside": (
        "def f(x):\n" + BODY + "\n\ndef g(x):\n    return x + 2\n",
        "def f(x):\n    total = x + 1\n    return total\n\n\ndef g(x):\n    return x + 2\n",
        ["f"],
    ),
    "the-end-of-a-body-deleted": (
        "def f(x):\n" + BODY + "\n\ndef g(x):\n    y = 2\n    return x + y\n",
        "def f(x):\n    if x:\n        return 1\n\n\ndef g(x):\n    y = 2\n    return x + y\n",
        ["f"],
    ),
    "the-next-function-deleted": (
        "def f(x):\n" + BODY + "\n\ndef gone(x):\n    y = 2\n    return x + y\n",
        "def f(x):\n" + BODY,
        [],
    ),
    "a-decorator-deleted": (
        "import functools\n\n\n@functools.cache\ndef f(x):\n" + BODY,
        "import functools\n\n\ndef f(x):\n" + BODY,
        ["f"],
    ),
    "a-method-deleted-touches-no-class": (
        "class Box:\n    size = 1\n\n    def keep(self, x):\n        y = x + 1\n        return y\n"
        "\n    def gone(self):\n        y = 2\n        return y\n",
        "class Box:\n    size = 1\n\n    def keep(self, x):\n        y = x + 1\n        return y\n",
        [],
    ),
    "a-class-attribute-deleted-touches-the-class": (
        "class Box:\n    size = 1\n    color = 'red'\n\n    def keep(self, x):\n"
        "        y = x + 1\n        return y\n",
        "class Box:\n    size = 1\n\n    def keep(self, x):\n        y = x + 1\n        return y\n",
        ["Box"],
    ),
    "the-last-line-of-a-method-deleted-touches-the-method-not-the-class": (
        "class Box:\n    def keep(self, x):\n        y = x + 1\n        print(y)\n        return y\n",
        "class Box:\n    def keep(self, x):\n        y = x + 1\n        print(y)\n",
        ["Box.keep"],
    ),
}


@pytest.mark.parametrize(("base", "head", "expected"), DELETIONS.values(), ids=DELETIONS.keys())
def test_deletion_only_prs(base: str, head: str, expected: list[str]) -> None:
    result, patches, raw = pr({"m.py": base}, {"m.py": head})
    assert "+" not in "".join(line[:1] for line in patches["m.py"].split("\n")[1:])
    assert sorted(suggestions(result)) == expected
    assert_github_proof(result, patches, raw)


# ----------------------------------------------------- part 2: GitHub's line numbers

# Characters before a target: a lone \r breaks a line for Python, never for git; the
# others break one for str.splitlines but for neither Python nor git.
SEPARATORS = {
    "lone-cr": "\r",
    "crlf": "\r\n",
    "form-feed": "\x0c",
    "vertical-tab": "\x0b",
    "file-separator": "\x1c",
    "group-separator": "\x1d",
    "record-separator": "\x1e",
    "next-line": "\x85",
    "line-separator": "\u2028",
    "paragraph-separator": "\u2029",
}

GUARDED = '''\
import auth


def require_admin(user):
    auth.check(user, "admin")  # keep{sep}# this comment
    note = """a{sep}b"""
    return note


def delete_all(user, items):
    require_admin(user)
    items.clear()
    return len(items)
'''


@pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_suggestions_land_on_git_lines_after_any_line_separator(sep: str) -> None:
    base = GUARDED.replace("{sep}", sep).replace("def delete_all", "def old_delete_all")
    head = GUARDED.replace("{sep}", sep)
    if sep == "\r\n":
        base, head = base.replace("\n", "\r\n"), head.replace("\n", "\r\n")
        base, head = base.replace("\r\r\n", "\r\n"), head.replace("\r\r\n", "\r\n")
    result, patches, raw = pr({"m.py": base}, {"m.py": head})
    [outcome] = suggestions(result).values()
    assert outcome.target.qualname == "delete_all"
    git_line = (
        head.encode().split(b"\n").index(b"def delete_all(user, items):" + b"\r" * (sep == "\r\n"))
        + 1
    )
    s = outcome.suggestion
    assert (s.start, s.end) == (git_line, git_line)
    assert outcome.target.def_line == git_line  # the summary's line column
    assert reports.json_report(result.report)["outcomes"][0]["line"] == git_line
    assert_github_proof(result, patches, raw)
    after = github_commit(raw["m.py"], s).decode()
    assert "require_admin(user)\n" in after.replace("\r\n", "\n")


def test_a_lone_cr_in_the_lines_a_suggestion_replaces_is_a_skip_with_the_reason():
    base = "import os\n"
    head = "import os\n\n\ndef f(x):  # legacy\r    # old mac note\n    y = x + 1\n    return y\n"
    result, _, _ = pr({"m.py": base}, {"m.py": head})
    [outcome] = result.report.outcomes
    assert outcome.action == Action.SKIPPED and outcome.suggestion is None
    assert outcome.reason.startswith("line 4 holds a lone carriage return")
    assert outcome.target.def_line == 4


def test_a_parse_error_after_a_lone_cr_is_reported_on_git_s_line():
    head = "x = 1  # a\rb = 2\n\ndef broken(:\n    pass\n"
    result, _, _ = pr({}, {"m.py": head})
    [skip] = result.report.skips
    assert skip.line == 3 and "(line 3)" in skip.reason
    assert head.split("\n")[skip.line - 1].startswith("def broken")


def test_annotations_for_a_header_outside_the_diff_use_git_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(12))
    base = "# one\rtwo = 2\n\n\ndef far(a):\n" + body + "    return a\n"
    head = base.replace("    return a\n", "    x99 = 99\n    return a\n")
    result, _, _ = pr({"m.py": base}, {"m.py": head})
    [outcome] = result.report.outcomes
    assert outcome.reason.startswith(checkrun.OUTSIDE_DIFF)
    [annotation] = checkrun.annotations(result.report)
    assert annotation["start_line"] == 4 == head.split("\n").index("def far(a):") + 1


# ------------------------------------------------------ part 3: comments survive

STALE = '''\
def scale(values, factor):
    """Scale the values.

    Args:
        values: The values.
        size: Gone.
    """  # noqa: D401 keep me
    return [v * factor for v in values]


def shift(values, offset):
    """Shift.  Args: values: The values.

    Args:
        amount: Gone.
    """; marker = 1  # trailing code and comment
    return [v + offset for v in values], marker
'''


def test_stale_docstrings_keep_the_code_and_comments_on_their_lines():
    # The PR edits each docstring's first and last line: one hunk holds the docstring.
    base = STALE.replace("Scale the", "Scale").replace("keep me", "").replace("Shift.", "Move.")
    base = base.replace("trailing code and comment", "trailing")
    result, patches, raw = pr({"m.py": base}, {"m.py": STALE}, RepoConfig(update_stale=True))
    got = suggestions(result)
    assert sorted(got) == ["scale", "shift"]
    assert got["scale"].suggestion.body_lines[-1].endswith('"""  # noqa: D401 keep me')
    assert (
        got["shift"]
        .suggestion.body_lines[-1]
        .endswith('"""; marker = 1  # trailing code and comment')
    )
    assert_github_proof(result, patches, raw)


# A stale docstring with comments before, after and on its lines; the proof and
# GitHub's commit must keep every one.
_COMMENTS = st.sampled_from(["# c", "# noqa: D401", "# type: ignore", "#", "# é ü"])
_STALE_DOCS = (
    '"""Old.\n\n    Args:\n        c: Gone.\n    """',
    "'''Old.\n\n    Args:\n        c: Gone.'''",
    'r"""Old \\d.\n\n    Args:\n        c: Gone.\n    """',
)


@st.composite
def documented_sources(draw) -> str:
    pieces = ["def target(a, b):"]
    if draw(st.booleans()):
        pieces.append(f"    {draw(_COMMENTS)}")
    suffix = draw(st.sampled_from(["", "  ", "  {c}", "; x = 1", "; x = 1  {c}", "  # {c}"]))
    pieces.append(f"    {draw(st.sampled_from(_STALE_DOCS))}{suffix.format(c=draw(_COMMENTS))}")
    if draw(st.booleans()):
        pieces.append(f"    {draw(_COMMENTS)}")
    pieces.append("    return a" + (f"  {draw(_COMMENTS)}" if draw(st.booleans()) else ""))
    return "\n".join(pieces) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documented_sources())
def test_comments_on_docstring_lines_survive_github_s_commit(head):
    base = head.replace("c: Gone.", "c: Old.")  # a hunk around the whole docstring
    result, patches, raw = pr({"m.py": base}, {"m.py": head}, RepoConfig(update_stale=True))
    [outcome] = suggestions(result).values()
    assert outcome.action == Action.UPDATED
    assert_github_proof(result, patches, raw)
