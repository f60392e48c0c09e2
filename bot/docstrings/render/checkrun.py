"""The check run's output: its title, Markdown summary, annotations and offered text.

Everything here is pure: a :class:`~bot.docstrings.models.Report` in, strings or JSON-ready data
out, ordered by path, then line, then name, so identical runs publish identical text.
GitHub's limits are in bytes of UTF-8 (:mod:`bot.docstrings.render.markdown`); text that would not fit
loses whole rows or entries, with a note of how many.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.docstrings.models import (
    Action,
    Decision,
    Outcome,
    Report,
    Suggestion,
)
from bot.docstrings.render import tally
from bot.docstrings.render.markdown import (
    cap_bytes,
    code_span,
    cut_to_bytes,
    fence_for,
    inline,
    shorten,
    utf8_size,
)

# GitHub caps a check run's output.summary and output.text at 65,535 *bytes* of UTF-8
# ("summary exceeds a maximum bytesize of 65535"), though the docs say characters:
# https://docs.github.com/en/rest/checks/runs#create-a-check-run and
# https://github.com/github/docs/issues/35252
SUMMARY_LIMIT = 65_535
# Annotation fields: title at most 255 characters, message and raw_details 64 KB each
# (same page), counted in bytes like the summary.  GitHub also takes at most 50
# annotations per request; batching them is the publisher's job.
ANNOTATION_TITLE_LIMIT = 255
ANNOTATION_TEXT_LIMIT = 65_535

# An outcome whose reason starts with this had a docstring but no commentable line:
# it becomes an annotation instead of a review comment (DESIGN.md, invariant 2).
OUTSIDE_DIFF = "outside the diff"


def check_title(report: Report) -> str:
    """A one-line title for the check run's ``output.title``."""
    return f"docgen: {tally.counts_text(report)}"


# ---------------------------------------------------------------- markdown


@dataclass(frozen=True)
class _Group:
    """Lines of the summary that can be dropped row by row to fit the size limit."""

    kind: str  # "table" | "skipped"
    head: tuple[str, ...]
    rows: tuple[str, ...]


_TABLE_HEAD = ("| function | line | action | note |", "| --- | ---: | --- | --- |")


def _table_groups(report: Report) -> list[_Group]:
    by_path: dict[str, list[Outcome]] = {}
    for outcome in sorted(report.outcomes, key=tally.outcome_key):
        if outcome.action in (Action.ADDED, Action.UPDATED, Action.OFFERED):
            by_path.setdefault(outcome.target.path, []).append(outcome)
    groups = []
    for path, outcomes in by_path.items():
        rows = tuple(
            f"| {code_span(o.target.qualname, in_table=True)} | {o.target.def_line} "
            f"| {o.action.value} | {inline(tally.outcome_note(o), in_table=True)} |"
            for o in outcomes
        )
        groups.append(_Group("table", ("", f"#### {code_span(path)}", "", *_TABLE_HEAD), rows))
    return groups


def _skipped_line(item: tally.SkippedItem) -> str:
    where = f"{item.path}:{item.line}" if item.line is not None else item.path
    name = f" {code_span(item.qualname)}" if item.qualname else ""
    return f"- {code_span(where)}{name} — {inline(item.reason) or 'skipped'}"


def _omitted(n: int) -> str:
    return f"*… {n:,} more {'row' if n == 1 else 'rows'} omitted (summary size limit)*"


def _quotas(groups: list[_Group], keep: int) -> dict[str, int]:
    """How many of ``keep`` rows go to the tables and how many to the skipped list.

    Rows are shared out alternately, so a long table cannot crowd out every skipped
    item (nor the other way round); what one kind does not need goes to the other.
    """
    tables = sum(len(g.rows) for g in groups if g.kind == "table")
    skipped = sum(len(g.rows) for g in groups if g.kind == "skipped")
    for_tables = min(tables, max((keep + 1) // 2, keep - skipped))
    return {"table": for_tables, "skipped": min(skipped, keep - for_tables)}


def _render_summary(head: list[str], groups: list[_Group], tail: list[str], keep: int) -> str:
    """The summary with only ``keep`` of its droppable rows, each kind cut at its end."""
    quota = _quotas(groups, keep)
    omitted = {"table": 0, "skipped": 0}
    lines = list(head)

    def note(kind: str) -> None:
        if omitted[kind]:
            lines.extend(([""] if lines[-1] else []) + [_omitted(omitted[kind])])
            omitted[kind] = 0

    for group in groups:
        shown = group.rows[: quota[group.kind]]
        quota[group.kind] -= len(shown)
        omitted[group.kind] += len(group.rows) - len(shown)
        if group.kind == "skipped":
            note("table")
        if shown or group.kind == "skipped":
            lines += [*group.head, *shown]
    note("table")
    note("skipped")
    lines += tail
    return "\n".join(lines) + "\n"


def _hard_cut(text: str, max_bytes: int) -> str:
    """Last resort when even the fixed parts are too long: cut at a line boundary."""
    suffix = "\n\n*… summary truncated (size limit)*\n"
    # One byte more than the room: a newline just past it still ends a kept line.
    room = cut_to_bytes(text, max(max_bytes - utf8_size(suffix), 0) + 1)
    cut = room.rfind("\n")
    return cut_to_bytes(text[: max(cut, 0)] + suffix, max_bytes)


def markdown_report(report: Report, *, max_bytes: int = SUMMARY_LIMIT) -> str:
    """The check run's ``output.summary``: what was done, coverage, what was skipped, cost.

    When the text would exceed ``max_bytes`` of UTF-8 (GitHub's limit is 65,535
    bytes), table rows and skipped items are dropped from the end, whole rows only,
    with a visible note of how many were omitted.
    """
    head = [
        f"### 📝 docgen — {tally.counts_text(report)}",
        "",
        tally.coverage_text(
            report.coverage_before, report.coverage_after, excluded=tally.all_excluded(report)
        ),
    ]
    groups = _table_groups(report)
    if not groups:
        head += ["", "No docstrings to suggest."]
    elif tally.is_offline(report):
        head += [
            "",
            "> Offline run: these docstrings are skeletons derived from the signatures,"
            " written without an LLM; edit them before committing.",
        ]
    skipped = tally.skipped_items(report)
    if skipped:
        groups.append(
            _Group("skipped", ("", "#### Skipped", ""), tuple(_skipped_line(i) for i in skipped))
        )

    tail = ["", "#### Run", ""]
    tail.append(f"- Tokens: {tally.tokens_text(report)}")
    tail.append(f"- Cost: {tally.cost_text(report)}")
    style = tally.style_used(report)
    tail.append(
        f"- Model: {tally.model_text(report, code_span, inline)}"
        + (f"; style: {style}" if style else "")
    )
    tail.append(f"- Cache hits: {report.cache_hits:,}")
    tail.append(f"- Elapsed: {report.elapsed_s:.1f} s")
    if report.notes:
        tail += ["", "#### Notes", ""]
        tail += [f"- {inline(note, 2_000)}" for note in report.notes]

    return _fit(head, groups, tail, max_bytes)


def _fit(head: list[str], groups: list[_Group], tail: list[str], max_bytes: int) -> str:
    """The summary with as many rows as fit in ``max_bytes`` (UTF-8)."""
    total = sum(len(g.rows) for g in groups)
    text = _render_summary(head, groups, tail, total)
    if utf8_size(text) <= max_bytes:
        return text
    # Largest number of rows that fits.  Size grows with every row kept (a row is
    # far longer than the digit an "omitted" count can lose), so bisect.
    lo, hi = 0, total - 1
    if utf8_size(_render_summary(head, groups, tail, 0)) > max_bytes:
        return _hard_cut(_render_summary(head, groups, tail, 0), max_bytes)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if utf8_size(_render_summary(head, groups, tail, mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return _render_summary(head, groups, tail, lo)


# ----------------------------------------------------------------- annotations


def annotations(report: Report) -> list[dict[str, object]]:
    """Check-run annotations for definitions whose docstring slot is outside the diff.

    Review comments can only target lines of the diff (DESIGN.md, invariant 2), so
    these are reported on the check run instead, with the proposed docstring in
    ``raw_details`` when there is one.  Shape:
    https://docs.github.com/en/rest/checks/runs#create-a-check-run
    """
    out: list[dict[str, object]] = []
    for o in sorted(report.outcomes, key=tally.outcome_key):
        if o.action == Action.OFFERED and o.replacement is not None:
            out.append(_offered_annotation(o, o.replacement))
            continue
        if o.action != Action.SKIPPED or not o.reason.startswith(OUTSIDE_DIFF):
            continue
        target = o.target
        stale = target.decision == Decision.STALE
        what = "Stale docstring" if stale else "Missing docstring"
        if o.docstring:
            message = (
                f"docgen wrote a docstring for {target.qualname} but cannot suggest it in a"
                f" review comment ({o.reason}). The proposed docstring is in the details."
            )
        else:
            state = "has a stale docstring" if stale else "has no docstring"
            message = f"{target.qualname} {state}; docgen cannot suggest one here ({o.reason})."
        item: dict[str, object] = {
            "path": target.path,
            "start_line": target.def_line,
            "end_line": max(target.header_end, target.def_line),
            "annotation_level": "notice",
            "title": shorten(f"{what}: {target.qualname}", ANNOTATION_TITLE_LIMIT),
            "message": cap_bytes(message, ANNOTATION_TEXT_LIMIT),
        }
        if o.docstring:
            item["raw_details"] = cap_bytes(o.docstring, ANNOTATION_TEXT_LIMIT)
        out.append(item)
    return out


def _span(start: int, end: int) -> str:
    return f"line {start}" if start == end else f"lines {start}–{end}"


def _offered_annotation(o: Outcome, r: Suggestion) -> dict[str, object]:
    """An offered replacement, pinned to the first line it replaces."""
    target = o.target
    what = "Stale docstring" if target.decision == Decision.STALE else "Missing docstring"
    message = (
        f"docgen rewrote the docstring of {target.qualname} ({_span(r.start, r.end)}) but"
        f" cannot suggest it in a review comment: {o.reason}. The exact replacement is in"
        " the details and in this check run's text."
    )
    return {
        "path": target.path,
        "start_line": r.start,
        "end_line": r.start,
        "annotation_level": "notice",
        "title": shorten(f"{what}: {target.qualname}", ANNOTATION_TITLE_LIMIT),
        "message": cap_bytes(message, ANNOTATION_TEXT_LIMIT),
        "raw_details": cap_bytes("\n".join(r.body_lines), ANNOTATION_TEXT_LIMIT),
    }


# ------------------------------------------------------------------ offered text

_OFFERED_HEAD = (
    "### Docstrings to apply by hand",
    "",
    "GitHub takes a suggestion only on lines inside one hunk of the pull request's diff,"
    " so these cannot be one-click suggestions. Each replacement is proven like one:"
    " applied, it changes nothing but the docstring.",
)


def _offered_block(o: Outcome, r: Suggestion) -> str:
    """One offered replacement: where, why, and the exact new lines in a code block.

    The fence is longer than any backtick run in the lines, so nothing in the
    docstring can close it (https://spec.commonmark.org/0.31.2/#fenced-code-blocks).
    """
    fence = fence_for(r.body_lines)
    return "\n".join(
        [
            "",
            f"#### {code_span(r.path)} {_span(r.start, r.end)}: {code_span(o.target.qualname)}",
            "",
            inline(tally.outcome_note(o), 2_000),
            "",
            f"Replace {_span(r.start, r.end)} of {code_span(r.path)} with:",
            "",
            f"{fence}python",
            *r.body_lines,
            fence,
        ]
    )


def offered_text(report: Report, *, max_bytes: int = SUMMARY_LIMIT) -> str | None:
    """The check run's ``output.text``: replacements GitHub cannot take as suggestions.

    None when there are none.  Whole entries are dropped from the end to stay within
    ``max_bytes`` of UTF-8 (GitHub's limit for ``output.text`` is 65,535 bytes), with
    a note saying how many.
    """
    offered = [
        (o, o.replacement)
        for o in sorted(report.outcomes, key=tally.outcome_key)
        if o.action == Action.OFFERED and o.replacement is not None
    ]
    if not offered:
        return None
    head = "\n".join(_OFFERED_HEAD)
    reserve = utf8_size(_offered_omitted(len(offered)))
    parts, size = [head], utf8_size(head) + 1
    for i, (o, r) in enumerate(offered):
        block = _offered_block(o, r)
        room = max_bytes - (reserve if i < len(offered) - 1 else 0)
        if size + utf8_size(block) + 1 > room:
            parts.append(_offered_omitted(len(offered) - i))
            break
        parts.append(block)
        size += utf8_size(block) + 1
    return cut_to_bytes("\n".join(parts) + "\n", max_bytes)


def _offered_omitted(n: int) -> str:
    what = "replacement" if n == 1 else "replacements"
    return (
        f"\n*… {n:,} more {what} omitted (size limit): run `docgen review` on a checkout"
        " of this branch to apply them.*"
    )
