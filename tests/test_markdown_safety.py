"""Issue 14.5: text docgen writes never pings, references or links anyone.

Names, paths, reasons and notes come from the PR (its code, its docstrings, its config)
or from the model.  Every Markdown body docgen writes — review comments, the check
run's summary, issue-comment replies, failure summaries — is parsed by an independent
oracle (markdown-it-py, tests/markdown_oracle.py) and must hold no link, image or raw
HTML token, and no @mention, #123 / GH-123 reference or URL in text outside code.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.docstrings.models import Action, Coverage, Decision, Outcome, Report, Skip, Suggestion
from bot.docstrings.render import checkrun, review_comment
from bot.runtime import conclusion, events
from tests.factories import target_at
from tests.markdown_oracle import assert_inert, inspect
from tests.webhook_payloads import issue_comment_event

HOSTILE = [
    "@octocat",
    "@org/team",
    "#123",
    "GH-123",
    "gh-9",
    "owner/repo#7",
    "https://evil.example/login",
    "http://x.y",
    "ftp://files.example/a",
    "www.evil.example",
    "WWW.Evil.Example",
    "mail@evil.example",
    "mailto:mail@evil.example",
    "<https://evil.example>",
    "<img src=x onerror=alert(1)>",
    "<!-- hidden -->",
    "<script>alert(1)</script>",
    "![pixel](https://evil.example/p.png)",
    "[click](https://evil.example)",
    "[ref]: https://evil.example",
    "&#64;octocat",
    "&commat;octocat",
    "&#x23;123",
    "\\@octocat",
    "\\#123",
    "`",
    "``",
    "```",
    "|",
    "\\|",
    "\\",
    "*",
    "_",
    "~~",
    "\n",
    "\r\n",
    "  ",
    "<",
    ">",
    ":",
    "/",
    "#",
    "@",
    "www",
    ".",
    "-",
    "1",
    "é—📝",
]
PIECE = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet="ab@#:/.-`|\\<>[]()!*_~&; 0123456789GHhw\n", max_size=12),
    st.text(max_size=6),
)
HOSTILE_TEXT = st.lists(PIECE, max_size=8).map("".join)
# One of the given hostile strings plus anything: the property always sees an attack.
ATTACK = st.tuples(st.sampled_from(HOSTILE[:24]), HOSTILE_TEXT).map(lambda p: p[0] + p[1])


@st.composite
def outcomes(draw: st.DrawFn) -> Outcome:
    path = draw(st.one_of(ATTACK, HOSTILE_TEXT)) + ".py"
    qualname = draw(st.one_of(ATTACK, HOSTILE_TEXT))
    line = draw(st.integers(1, 10_000))
    action = draw(st.sampled_from([Action.ADDED, Action.UPDATED, Action.OFFERED, Action.SKIPPED]))
    decision = Decision.STALE if action in (Action.UPDATED, Action.OFFERED) else Decision.MISSING
    t = target_at(path, qualname, line, body_lines=3, decision=decision)
    reason = draw(ATTACK)
    docstring = draw(HOSTILE_TEXT)
    # Suggested lines are lines: no line break inside (validate splits at them).
    line_text = HOSTILE_TEXT.map(lambda s: re.sub(r"[\r\n]", "", s))
    body = tuple(draw(st.lists(line_text, max_size=4)))
    lines = Suggestion(path, line, line + len(body), body, t.id, "0a1b")
    suggestion = lines if action in (Action.ADDED, Action.UPDATED) else None
    replacement = lines if action == Action.OFFERED else None
    offline = draw(st.booleans())
    return Outcome(t, action, reason, docstring, suggestion, offline, replacement)


@st.composite
def reports(draw: st.DrawFn) -> Report:
    skips = [
        Skip(draw(HOSTILE_TEXT), draw(ATTACK), draw(st.none() | ATTACK), draw(st.none() | st.integers(1, 99)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    return Report(
        outcomes=draw(st.lists(outcomes(), max_size=4)),
        skips=skips,
        coverage_before=Coverage(1, 3),
        coverage_after=Coverage(2, 3),
        model=draw(ATTACK),
        provider=draw(ATTACK),
        notes=draw(st.lists(ATTACK, max_size=3)),
    )


def one_line(text: str) -> str:
    """As code shows it: one line, and NUL read as U+FFFD (CommonMark's rule)."""
    return " ".join(text.split()).replace("\0", "\ufffd")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports())
def test_summary_is_inert(report: Report) -> None:
    seen = assert_inert(checkrun.markdown_report(report))
    # Names are still shown, as code (each a span of its own, table pipes and all).
    for o in report.outcomes:
        name = one_line(o.target.qualname)
        if o.action != Action.SKIPPED and name and len(name) < 250:
            assert name in seen.code


def fenced(lines: tuple[str, ...]) -> str:
    """A code block's content as CommonMark reads it (NUL as U+FFFD)."""
    return "".join(f"{line}\n" for line in lines).replace("\0", "\ufffd")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(report=reports())
def test_offered_text_is_inert_and_holds_the_exact_replacements(report: Report) -> None:
    text = checkrun.offered_text(report)
    offered = [o for o in report.outcomes if o.action == Action.OFFERED]
    if not offered:
        assert text is None
        return
    assert text is not None
    seen = assert_inert(text)
    # Each replacement in a block of its own, line for line: no docstring closes its fence.
    key = lambda o: (o.target.path, o.target.def_line, o.target.qualname)  # noqa: E731
    expected = [("python", fenced(o.replacement.body_lines)) for o in sorted(offered, key=key)]
    assert seen.fences == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(outcome=outcomes())
def test_review_comments_are_inert_and_suggest_exactly_the_lines(outcome: Outcome) -> None:
    body = review_comment.comment_for(outcome)
    if body is None:
        return
    seen = assert_inert(body)
    assert outcome.suggestion is not None
    lines = outcome.suggestion.body_lines
    # One fenced block, the suggestion, holding exactly the suggested lines: nothing in
    # them can close the fence early.
    # (CommonMark reads a NUL as U+FFFD: https://spec.commonmark.org/0.31.2/#insecure-characters)
    assert seen.fences == [("suggestion", fenced(lines))]


@settings(max_examples=200)
@given(word=ATTACK)
def test_command_error_replies_are_inert(word: str) -> None:
    for body in (f"/docgen --style {word}", f"/docgen --{word}"):
        decision = events.decide("issue_comment", issue_comment_event(body))
        if isinstance(decision, events.Reply):
            assert_inert(decision.body)


@settings(max_examples=200)
@given(reason=ATTACK)
def test_failure_summaries_are_inert(reason: str) -> None:
    assert_inert(conclusion.failure_summary(f"Not found on GitHub: {reason}"))


def test_the_reported_attacks_render_as_text() -> None:
    """The two cases of the issue, by name."""
    stale = Outcome(
        target_at("a.py", "f", 3, body_lines=3, decision=Decision.STALE),
        Action.UPDATED,
        "documents `@octocat` but the signature has `user` (not in the signature: `@octocat`)",
        suggestion=Suggestion("a.py", 4, 4, ('    """Do."""',), "a.py::f@3", "ab"),
    )
    body = review_comment.comment_for(stale)
    assert body is not None
    assert "@octocat" in assert_inert(body).code  # shown, as code
    rejected = Outcome(
        target_at("a.py", "g", 9, body_lines=3),
        Action.SKIPPED,
        "rejected: see https://evil.example/login or mail @octocat about #12",
    )
    summary = checkrun.markdown_report(Report(outcomes=[rejected], model="https://evil.example"))
    seen = assert_inert(summary)
    # Still readable: the words are there, only broken where GitHub would act.
    text = re.sub("\u2060", "", "".join(seen.text))
    assert "see https://evil.example/login or mail @octocat about #12" in text


def test_the_oracle_catches_what_github_would_render() -> None:
    """The oracle is not vacuous: live mentions, references and links are found."""
    for body in (
        "hi @octocat",
        "fixes #123",
        "see GH-7",
        "go to https://evil.example",
        "www.evil.example",
        "mail a@b.example",
        "[x](https://e.example)",
        "![x](y.png)",
        "<b>bold</b>",
        "\\@octocat",  # a backslash does not stop GitHub's mention filter
        "&#64;octocat",
        "| a |\n| - |\n| @octocat |",
    ):
        assert inspect(body).problems, body
    assert not inspect("`@octocat` and ``#1`` and\n\n```\nhttps://e.example\n```\n").problems
