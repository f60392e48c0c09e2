"""Tests for what docgen shows people: review comments (bot.comments), the check run
(bot.docstrings.render.checkrun), the local reports and diffs (bot.docstrings.render.reports), safe Markdown (bot.docstrings.render.markdown)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.docstrings.models import (
    Action,
    Coverage,
    Decision,
    Outcome,
    Report,
    Skip,
    Style,
    Suggestion,
    Target,
    Usage,
)
from bot.docstrings.render.checkrun import SUMMARY_LIMIT, annotations, check_title, markdown_report
from bot.docstrings.render.checkrun import offered_text as render_offered
from bot.docstrings.render.markdown import cap_bytes, cut_to_bytes
from bot.docstrings.render.reports import json_report, text_report, unified_diff
from bot.docstrings.render.review_comment import (
    comment_for,
    marker,
    parse_marker,
    suggestion_comment,
)
from tests.factories import target_at as target
from tests.markdown_oracle import assert_inert

FIXTURES = Path(__file__).parent / "fixtures" / "render"


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/fixtures/render/<name>; DOCGEN_UPDATE_GOLDEN=1 rewrites it."""
    path = FIXTURES / name
    if os.environ.get("DOCGEN_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"missing golden file {path}; run with DOCGEN_UPDATE_GOLDEN=1"
    assert text == path.read_bytes().decode("utf-8")


def suggestion(t: Target, *body: str, h: str = "0123abcd") -> Suggestion:
    return Suggestion(t.path, t.header_end, t.header_end, tuple(body), t.id, h)


ADD_T = target("bot/store.py", "Store.put", 41, header_end=43)
ADD = Outcome(
    ADD_T,
    Action.ADDED,
    docstring="Store a record.",
    suggestion=suggestion(ADD_T, "    ) -> None:", '        """Store a record."""'),
)
STALE_T = target("bot/store.py", "Store.get", 12, decision=Decision.STALE)
STALE = Outcome(
    STALE_T,
    Action.UPDATED,
    reason="documents `key` but the parameter is now `name` | renamed",
    docstring="Fetch a record.",
    suggestion=suggestion(STALE_T, '        """Fetch a record."""'),
)
OFFLINE_T = target("bot/api.py", "handle", 7)
OFFLINE = Outcome(
    OFFLINE_T,
    Action.ADDED,
    docstring="Handle.\n\nArgs:\n    req: TODO.",
    suggestion=suggestion(
        OFFLINE_T, '    """Handle.', "", "    Args:", "        req: TODO.", '    """'
    ),
    offline=True,
)
OUTSIDE_T = target("bot/api.py", "Api.close", 90, header_end=91)
OUTSIDE = Outcome(
    OUTSIDE_T,
    Action.SKIPPED,
    reason="outside the diff: line 92 is not in any hunk",
    docstring="Close the connection.",
)
OUTSIDE_NO_DOC = Outcome(
    target("bot/api.py", "Api.open", 80, decision=Decision.STALE),
    Action.SKIPPED,
    reason="outside the diff",
)
PRIVATE = Outcome(target("bot/api.py", "_helper", 3), Action.SKIPPED, reason="private")
UNCHANGED = Outcome(target("bot/store.py", "Store.__init__", 5), Action.UNCHANGED)


def sample_report() -> Report:
    return Report(
        # Deliberately unordered: rendering sorts by path, then line.
        outcomes=[ADD, UNCHANGED, OUTSIDE, STALE, PRIVATE, OFFLINE, OUTSIDE_NO_DOC],
        skips=[
            Skip("gen/schema_pb2.py", "generated file"),
            Skip("bot/broken.py", "syntax error at line 3: invalid syntax"),
            Skip("bot/api.py", "budget exhausted", qualname="Api.stream", line=120),
        ],
        coverage_before=Coverage(30, 49),
        coverage_after=Coverage(43, 49),
        usage=Usage(12_345, 2_100),
        cost_usd=0.00311775,
        budget=20_000,
        model="gpt-4o-mini",
        provider="openai",
        style=Style.GOOGLE,
        cache_hits=3,
        elapsed_s=4.217,
        notes=[".github/docgen.yml: budget: Input should be greater than 0; using default None"],
    )


def offline_report() -> Report:
    return Report(
        outcomes=[OFFLINE],
        coverage_before=Coverage(0, 1),
        coverage_after=Coverage(1, 1),
        model="offline",
        provider="offline",
        style=Style.NUMPY,
    )


# ---------------------------------------------------------------------- goldens


@pytest.mark.parametrize(
    ("name", "render"),
    [
        pytest.param("summary.md", lambda: markdown_report(sample_report()), id="summary"),
        pytest.param("summary_offline.md", lambda: markdown_report(offline_report()), id="offline"),
        pytest.param("summary_empty.md", lambda: markdown_report(Report()), id="empty"),
        pytest.param("report.txt", lambda: text_report(sample_report()), id="text"),
        pytest.param("report_empty.txt", lambda: text_report(Report()), id="text-empty"),
        pytest.param(
            "report.json",
            lambda: json.dumps(json_report(sample_report()), indent=2, ensure_ascii=False) + "\n",
            id="json",
        ),
        pytest.param(
            "annotations.json",
            lambda: json.dumps(annotations(sample_report()), indent=2) + "\n",
            id="annotations",
        ),
        pytest.param("comment_added.md", lambda: comment_for(ADD), id="comment-added"),
        pytest.param("comment_updated.md", lambda: comment_for(STALE), id="comment-updated"),
        pytest.param("comment_offline.md", lambda: comment_for(OFFLINE), id="comment-offline"),
    ],
)
def test_golden(name: str, render) -> None:
    assert_golden(name, render())


def test_check_title() -> None:
    assert check_title(sample_report()) == "docgen: 2 added, 1 updated, 6 skipped, 1 unchanged"


def test_summary_is_deterministic_whatever_the_input_order() -> None:
    report = sample_report()
    shuffled = sample_report()
    shuffled.outcomes.reverse()
    shuffled.skips.reverse()
    assert markdown_report(report) == markdown_report(shuffled)
    assert text_report(report) == text_report(shuffled)
    assert json_report(report) == json_report(shuffled)


# -------------------------------------------------------------------- summary

ROW = re.compile(r"^\|.*\|$")


def cells(row: str) -> list[str]:
    """Cells of a Markdown table row, splitting on unescaped pipes only."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def table_rows(markdown: str) -> list[str]:
    return [
        line
        for line in markdown.splitlines()
        if line.startswith("| ")
        and line not in ("| function | line | action | note |",)
        and not line.startswith("| --- ")
    ]


def test_summary_headline_and_run_facts() -> None:
    text = markdown_report(sample_report())
    assert text.startswith("### 📝 docgen — 2 added, 1 updated, 6 skipped, 1 unchanged\n")
    assert "Docstring coverage 61.2% → 87.8% (+13 functions; 30/49 → 43/49 documented)" in text
    assert "12,345 prompt + 2,100 completion = 14,445 of 20,000 budget (72.2% used)" in text
    assert "- Cost: $0.0031" in text
    assert "`gpt-4o-mini` via openai" in text
    assert "- Cache hits: 3" in text
    assert "- Elapsed: 4.2 s" in text
    assert "#### Notes" in text


def test_summary_offline_cost_and_negative_delta() -> None:
    report = offline_report()
    report.coverage_before, report.coverage_after = Coverage(5, 10), Coverage(4, 10)
    text = markdown_report(report)
    assert "- Cost: $0 (offline)" in text
    assert "50.0% → 40.0% (-1 function;" in text


def test_summary_tables_per_file_sorted() -> None:
    text = markdown_report(sample_report())
    assert text.index("#### `bot/api.py`") < text.index("#### `bot/store.py`")
    rows = table_rows(text)
    assert [cells(r)[:3] for r in rows] == [
        ["`handle`", "7", "added"],
        ["`Store.get`", "12", "updated"],
        ["`Store.put`", "41", "added"],
    ]
    skipped = text.split("#### Skipped", 1)[1].split("#### Run", 1)[0].strip().splitlines()
    assert skipped == [
        "- `bot/api.py:3` `_helper` — private",
        "- `bot/api.py:80` `Api.open` — stale docstring; outside the diff",
        "- `bot/api.py:90` `Api.close` — outside the diff: line 92 is not in any hunk",
        "- `bot/api.py:120` `Api.stream` — budget exhausted",
        "- `bot/broken.py` — syntax error at line 3: invalid syntax",
        "- `gen/schema_pb2.py` — generated file",
    ]


@pytest.mark.parametrize(
    ("qualname", "reason"),
    [
        pytest.param("a|b", "x | y", id="pipes"),
        pytest.param("f", "uses `code` and ``more``", id="backticks"),
        pytest.param("f", "line one\nline two\r\n| --- |", id="newlines"),
        pytest.param("f", "<!-- hidden --> <script>alert(1)</script>", id="html"),
        pytest.param("we`ird", "*bold* _it_ [link](http://x) \\ & ~~", id="markdown"),
        pytest.param("f", "x" * 5_000, id="long"),
    ],
)
def test_summary_escapes_cells(qualname: str, reason: str) -> None:
    t = target("p.py", qualname, 3)
    report = Report(outcomes=[Outcome(t, Action.UPDATED, reason=reason)])
    text = markdown_report(report)
    rows = table_rows(text)
    assert len(rows) == 1
    row = cells(rows[0])
    assert len(row) == 4
    assert row[1:3] == ["3", "updated"]
    assert "\n" not in rows[0]
    assert len(row[3]) < 700
    # Markup shows as text (or, `quoted`, as code): no emphasis, link or HTML renders.
    seen = assert_inert(text)
    assert not seen.types & {"em_open", "strong_open", "s_open", "link_open", "html_inline"}


def test_summary_with_nothing_to_do() -> None:
    text = markdown_report(Report())
    assert "No docstrings to suggest." in text
    assert "no documentable definitions" in text
    assert "| function |" not in text


def nbytes(text: str) -> int:
    """What GitHub counts: UTF-8 bytes (github/docs#35252)."""
    return len(text.encode("utf-8"))


def big_report(n_outcomes: int, n_skips: int) -> Report:
    outcomes = [
        Outcome(
            target(f"pkg/module_{i // 50:03d}.py", f"Class{i}.method_{i}", 10 + i % 50 * 20),
            Action.ADDED if i % 3 else Action.UPDATED,
            reason="" if i % 3 else "parameter `value` renamed | stale description",
            offline=i % 2 == 0,
        )
        for i in range(n_outcomes)
    ]
    skips = [Skip(f"pkg/gen_{i:04d}.py", "generated file") for i in range(n_skips)]
    return Report(
        outcomes=outcomes,
        skips=skips,
        coverage_before=Coverage(1_000, 9_000),
        coverage_after=Coverage(1_000 + n_outcomes, 9_000),
    )


@pytest.mark.parametrize("max_bytes", [SUMMARY_LIMIT, 20_000, 3_000])
def test_summary_truncates_whole_rows(max_bytes: int) -> None:
    report = big_report(5_000, 800)
    full = markdown_report(report, max_bytes=10**9)
    text = markdown_report(report, max_bytes=max_bytes)
    assert nbytes(full) > max_bytes
    assert nbytes(text) <= max_bytes
    # Every table line is a whole row of four cells, and every row shown is a row of
    # the full summary, in the same order.
    full_rows = table_rows(full)
    rows = table_rows(text)
    assert rows and all(ROW.match(r) and len(cells(r)) == 4 for r in rows)
    assert rows == full_rows[: len(rows)]
    omitted = [
        int(n.replace(",", "")) for n in re.findall(r"\*… ([\d,]+) more rows? omitted", text)
    ]
    shown_skips = [line for line in text.splitlines() if line.startswith("- `pkg/gen_")]
    assert sum(omitted) + len(rows) + len(shown_skips) == 5_000 + 800
    # The headline and the run facts survive truncation.
    assert text.startswith("### 📝 docgen — ")
    assert "#### Run" in text and "- Elapsed:" in text
    # Fills the space: one more row would not fit.
    assert nbytes(text) > max_bytes - 300


def test_summary_truncation_shares_room_between_tables_and_skips() -> None:
    text = markdown_report(big_report(5_000, 10), max_bytes=20_000)
    assert len([line for line in text.splitlines() if line.startswith("- `pkg/gen_")]) == 10
    assert re.search(r"\*… [\d,]+ more rows omitted", text)
    both = markdown_report(big_report(5_000, 5_000), max_bytes=20_000)
    tables = len(table_rows(both))
    skips = len([line for line in both.splitlines() if line.startswith("- `pkg/gen_")])
    assert tables > 20 and skips > 20
    assert "\n\n\n" not in both


def test_summary_hard_cut_when_fixed_parts_are_too_long() -> None:
    report = Report(notes=[f"note {i}: " + "z" * 1_500 for i in range(100)])
    text = markdown_report(report, max_bytes=10_000)
    assert nbytes(text) <= 10_000
    assert text.rstrip().endswith("*… summary truncated (size limit)*")


@pytest.mark.parametrize("limit", [SUMMARY_LIMIT, 9_999])
def test_summary_fits_githubs_byte_limit_with_multibyte_rows(limit: int) -> None:
    """Rows of "—", CJK and emoji: the cut counts bytes and never splits a character."""
    skips = [Skip(f"pkg/生成_{i:04d}.py", "generated file — 🤖 vendored") for i in range(3_000)]
    report = Report(skips=skips, notes=["ノート — " * 50])
    text = markdown_report(report, max_bytes=limit)
    assert nbytes(text) <= limit < nbytes(markdown_report(report, max_bytes=10**9))
    assert len(text) < limit  # so a character count alone would have let it through
    assert nbytes(text) > limit - 300  # and the room is used
    assert "#### Run" in text and "omitted (summary size limit)" in text


@pytest.mark.parametrize("limit", [50, 200, 1_000])
def test_summary_hard_cut_counts_bytes(limit: int) -> None:
    report = Report(notes=["é—🤖" * 2_000])
    text = markdown_report(report, max_bytes=limit)
    assert nbytes(text) <= limit
    text.encode("utf-8")  # whole characters only: a split one would not encode back


@settings(max_examples=300)
@given(text=st.text(), limit=st.integers(min_value=0, max_value=200))
def test_cut_to_bytes_keeps_whole_characters(text: str, limit: int) -> None:
    cut = cut_to_bytes(text, limit)
    assert text.startswith(cut)
    assert nbytes(cut) <= limit
    rest = text[len(cut) :]
    assert not rest or nbytes(cut + rest[0]) > limit  # the longest such prefix
    capped = cap_bytes(text, max(limit, 3))
    assert nbytes(capped) <= max(limit, 3)
    assert capped == text or capped.endswith("…")


def test_summary_fits_exactly_without_truncation() -> None:
    report = sample_report()
    full = markdown_report(report)
    assert markdown_report(report, max_bytes=nbytes(full)) == full
    assert "omitted" in markdown_report(report, max_bytes=nbytes(full) - 1)


# --------------------------------------------------------------------- marker

HASH = st.from_regex(r"[A-Za-z0-9._:-]{0,64}", fullmatch=True)


@settings(max_examples=300)
@given(target_id=st.text(), docstring_hash=HASH)
def test_marker_round_trip(target_id: str, docstring_hash: str) -> None:
    m = marker(target_id, docstring_hash)
    assert m.startswith("<!-- docgen:v1 ") and m.endswith(" -->")
    assert m.count("-->") == 1 and "\n" not in m
    assert parse_marker(m) == (target_id, docstring_hash)
    assert parse_marker(f"some text\n\n{m}\n") == (target_id, docstring_hash)


@pytest.mark.parametrize(
    "target_id",
    [
        "a.py::f@1",
        "path with spaces/x.py::C.f@10",
        "evil.py::f --> <!-- docgen:v1 id=AAAA h=bad -->@3",
        "",
        "ünïcødé/🐍.py::f@1",
        "\ud800 lone surrogate",
    ],
)
def test_marker_hostile_ids(target_id: str) -> None:
    m = marker(target_id, "deadbeef")
    assert parse_marker(m) == (target_id, "deadbeef")


def test_marker_rejects_unsafe_hash() -> None:
    with pytest.raises(ValueError):
        marker("a", "x -->")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "no marker here",
        "<!-- docgen:v2 id=YQ h=1 -->",
        "<!-- docgen:v1 id=Y h=1 -->",  # not valid base64
        "<!-- docgen:v1 id=_w h=1 -->",  # not UTF-8
        "<!-- docgen:v1 id=YQ h=1-->",
    ],
)
def test_parse_marker_rejects(body: str) -> None:
    assert parse_marker(body) is None


def test_parse_marker_takes_the_last_marker() -> None:
    quoted = "> " + marker("old", "1")
    assert parse_marker(f"{quoted}\n\n{marker('new', '2')}") == ("new", "2")


# ------------------------------------------------------------------- comments


def test_comment_round_trips_marker_and_fences_body() -> None:
    body = comment_for(ADD)
    assert parse_marker(body) == (ADD_T.id, "0123abcd")
    assert body.startswith("📝 docgen: add a docstring to `Store.put`\n")
    assert "\n```suggestion\n    ) -> None:\n" in body


@pytest.mark.parametrize(
    ("lines", "fence"),
    [
        pytest.param(('    """Plain."""',), "```", id="none"),
        pytest.param(('    """Use `x`."""',), "```", id="single"),
        pytest.param(
            ('    """Example:', "    ```python", "    f()", "    ```", '    """'),
            "````",
            id="triple",
        ),
        pytest.param(('    """``````` wow."""',), "````````", id="seven"),
    ],
)
def test_comment_fence_longer_than_any_backtick_run(lines: tuple[str, ...], fence: str) -> None:
    t = target("a.py", "f", 1)
    body = suggestion_comment(suggestion(t, *lines), offline=False, action=Action.ADDED)
    block = "\n".join([f"{fence}suggestion", *lines, fence])
    assert f"\n\n{block}\n\n" in body
    # No line inside the block could close the fence early.
    assert all(not line.strip().startswith(fence) for line in lines)


def test_comment_for_update_offline_and_empty_body() -> None:
    t = target("a.py", "C.f", 4)
    s = Suggestion("a.py", 5, 6, (), t.id, "ff")
    body = suggestion_comment(s, offline=True, action=Action.UPDATED, reason="param `x` gone")
    assert body.splitlines()[0] == (
        "📝 docgen: update the stale docstring of `C.f` (param `x` gone)"
        " — skeleton written without an LLM, edit before committing"
    )
    assert "\n```suggestion\n```\n" in body  # an empty suggestion deletes the lines


def test_comment_for_without_suggestion() -> None:
    assert comment_for(OUTSIDE) is None


def test_comment_qualname_from_id_fallbacks() -> None:
    weird = Suggestion("a.py", 1, 1, ("x",), "no-separators", "1")
    assert "`no-separators`" in suggestion_comment(weird, offline=False, action=Action.ADDED)


# ---------------------------------------------------------------- annotations


def test_annotations_only_for_outside_the_diff() -> None:
    result = annotations(sample_report())
    assert [a["path"] + ":" + str(a["start_line"]) for a in result] == [
        "bot/api.py:80",
        "bot/api.py:90",
    ]
    for item in result:
        assert set(item) <= {
            "path",
            "start_line",
            "end_line",
            "annotation_level",
            "title",
            "message",
            "raw_details",
        }
        assert item["annotation_level"] == "notice"
        assert item["start_line"] <= item["end_line"]
        assert isinstance(item["message"], str) and item["message"]
    opened, closed = result
    assert opened["title"] == "Stale docstring: Api.open" and "raw_details" not in opened
    assert closed["title"] == "Missing docstring: Api.close"
    assert (closed["start_line"], closed["end_line"]) == (90, 91)
    assert closed["raw_details"] == "Close the connection."


def test_annotation_limits() -> None:
    long_name = "C." + "x" * 400
    t = target("a.py", long_name, 1)
    report = Report(
        outcomes=[Outcome(t, Action.SKIPPED, reason="outside the diff", docstring="é" * 70_000)]
    )
    (item,) = annotations(report)
    assert len(item["title"]) <= 255
    assert len(item["raw_details"].encode()) <= 65_535


# ------------------------------------------------------------------ json/text


def test_json_report_is_serialisable_and_complete() -> None:
    data = json_report(sample_report())
    assert json.loads(json.dumps(data)) == data
    assert data["counts"] == {
        "added": 2,
        "updated": 1,
        "offered": 0,
        "skipped": 6,
        "unchanged": 1,
    }
    assert [s["path"] for s in data["suggestions"]] == [
        "bot/api.py",
        "bot/store.py",
        "bot/store.py",
    ]
    assert data["suggestions"][1]["body_lines"] == ['        """Fetch a record."""']
    assert data["coverage"]["after"] == {"documented": 43, "total": 49, "percent": 87.76}
    assert data["usage"]["budget_used_percent"] == 72.22
    # Every skipped item is listed, files and definitions alike (issue 13).
    assert len(data["outcomes"]) == 7 and len(data["skips"]) == data["counts"]["skipped"] == 6


def test_text_report_is_aligned_plain_text() -> None:
    lines = text_report(sample_report()).splitlines()
    rows = lines[: lines.index("")]
    assert len(rows) == 10  # 7 outcomes + 3 skips
    assert rows[0].split()[:3] == ["bot/api.py:3", "_helper", "skipped"]
    locations = [r.split()[0] for r in rows]
    names = [r.split()[1] for r in rows]
    name_col = max(map(len, locations)) + 2
    action_col = name_col + max(map(len, names)) + 2
    for row in rows:
        assert row[name_col - 2 : name_col] == "  " and row[name_col] != " "
        assert row[action_col - 2 : action_col] == "  " and row[action_col] != " "
    assert lines[lines.index("") + 1] == "2 added, 1 updated, 6 skipped, 1 unchanged"


# ------------------------------------------------------------------------ diff


def test_unified_diff_basic_and_identical() -> None:
    head = "def f():\n    return 1\n"
    new = 'def f():\n    """One."""\n    return 1\n'
    assert unified_diff("a.py", head, new) == (
        '--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,3 @@\n def f():\n+    """One."""\n     return 1\n'
    )
    assert unified_diff("a.py", head, head) == ""


def test_unified_diff_keeps_crlf_and_marks_missing_newline() -> None:
    head = "def f():\r\n    return 1"
    new = 'def f():\r\n    """One."""\r\n    return 1'
    diff = unified_diff("w.py", head, new)
    assert '+    """One."""\r\n' in diff
    assert diff.endswith("     return 1\n\\ No newline at end of file\n")
    assert_golden("crlf.diff", diff)


def test_unified_diff_splits_on_newlines_only() -> None:
    head = "x = '\x0c'\n"
    new = "x = '\x0c'\ny = 1\n"
    assert unified_diff("f.py", head, new).endswith("@@ -1 +1,2 @@\n x = '\x0c'\n+y = 1\n")


# ------------------------------------------------------------------- offered


def offered(i: int, *lines: str) -> Outcome:
    t = target(f"pkg/m{i // 10}.py", f"f{i}", 10 * i + 1, decision=Decision.STALE)
    r = Suggestion(t.path, t.def_line + 1, t.def_line + len(lines), lines, t.id, "ab12")
    reason = f"the docstring spans lines {r.start}–{r.end} across two diff hunks; GitHub takes a suggestion within one hunk"
    return Outcome(t, Action.OFFERED, reason, "Doc.", replacement=r)


def test_offered_text_lists_each_replacement_and_fits_githubs_bytes() -> None:
    body = ('    """Größe — 📝 ```` and ``` inside.', "", "    Args:", "        x: ü.", '    """')
    report = Report(outcomes=[offered(i, *body) for i in range(1_000)])
    text = render_offered(report)
    assert nbytes(text) <= SUMMARY_LIMIT < sum(nbytes("\n".join(body)) for _ in range(1_000))
    blocks = assert_inert(text).fences
    assert blocks and all(b == ("python", "\n".join(body) + "\n") for b in blocks)
    [omitted] = re.findall(r"\*… ([\d,]+) more replacements omitted", text)
    assert len(blocks) + int(omitted.replace(",", "")) == 1_000
    assert "Replace lines 2–6 of `pkg/m0.py` with:" in text
    assert render_offered(Report(outcomes=[ADD, STALE, OUTSIDE])) is None


def test_offered_counts_in_the_title_and_table_and_annotates_its_first_line() -> None:
    o = offered(3, '    """New."""', "")
    report = Report(outcomes=[o, ADD])
    assert check_title(report) == "docgen: 1 added, 0 updated, 1 offered, 0 skipped"
    [row] = [r for r in table_rows(markdown_report(report)) if r.startswith("| `f3`")]
    assert cells(row)[2] == "offered" and "across two diff hunks" in cells(row)[3]
    assert "stale docstring" in cells(row)[3]
    [note] = annotations(report)
    assert (note["start_line"], note["end_line"]) == (32, 32)
    assert note["raw_details"] == '    """New."""\n'
    assert "across two diff hunks" in str(note["message"])
    assert comment_for(o) is None  # never a review comment
    assert json_report(report)["offered"][0]["start"] == 32
