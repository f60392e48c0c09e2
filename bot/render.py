"""Turn pipeline results into what people read: comments, summaries, annotations, diffs.

Everything here is pure: a :class:`~bot.models.Report` or
:class:`~bot.models.Suggestion` in, strings or JSON-ready data out.  Ordering is
deterministic (by path, then line, then name) so outputs compare with ``==`` in tests
and identical runs publish identical text.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.models import (
    EXCLUDED_BY_CONFIG,
    Action,
    Coverage,
    Decision,
    Outcome,
    Report,
    Skip,
    Suggestion,
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

OFFLINE_NOTE = "skeleton written without an LLM, edit before committing"
_CELL_LIMIT = 300  # characters of a note in a table cell or list item

# ------------------------------------------------------------------------ marker

_MARKER = re.compile(r"<!-- docgen:v1 id=([A-Za-z0-9_-]*) h=([A-Za-z0-9._:-]*) -->")
_HASH = re.compile(r"[A-Za-z0-9._:-]*")


def marker(target_id: str, docstring_hash: str) -> str:
    """The hidden HTML comment that identifies a suggestion comment.

    The id is url-safe base64 (no padding), so ids holding spaces, ``-->`` or any
    other text cannot break out of the comment.  The hash must be a plain token
    (hex digits, letters, ``._:-``); anything else is a programming error.
    """
    if not _HASH.fullmatch(docstring_hash):
        raise ValueError(f"docstring hash must match {_HASH.pattern}: {docstring_hash!r}")
    encoded = base64.urlsafe_b64encode(target_id.encode("utf-8", "surrogatepass"))
    return f"<!-- docgen:v1 id={encoded.decode('ascii').rstrip('=')} h={docstring_hash} -->"


def parse_marker(body: str) -> tuple[str, str] | None:
    """``(target_id, docstring_hash)`` from the last docgen marker in ``body``, if any."""
    found = _MARKER.findall(body or "")
    if not found:
        return None
    encoded, docstring_hash = found[-1]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogatepass"), docstring_hash
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


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
_BREAK = {"@": f"{_WJ}@{_WJ}", "#": f"#{_WJ}", "-": f"{_WJ}-", "": _WJ, ".": f"{_WJ}.", ":": f"{_WJ}:"}
_QUOTED = re.compile(r"`([^`]+)`")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _shorten(text: str, limit: int = _CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _escaped(text: str) -> str:
    """One line of untrusted text as inert inline Markdown (no markup, links, pings)."""
    text = _MD_SPECIAL.sub(r"\\\1", text).replace("&", "&amp;")
    return _TRIGGERS.sub(lambda m: _BREAK[m.group()], text)


def _md(text: str, limit: int = _CELL_LIMIT, *, in_table: bool = False) -> str:
    """Untrusted text as inline Markdown: one line, `quoted` parts as code, the rest inert.

    Reasons quote names in backticks ("documents `key` but ..."): those parts become
    code spans of their own, whatever backticks the names hold.
    """
    text = _shorten(_one_line(text), limit)
    out, last = [], 0
    for m in _QUOTED.finditer(text):
        # Two spans must not touch: their fences would merge into one longer run.
        between = _escaped(text[last : m.start()]) or (_WJ if out else "")
        out += [between, _code(m.group(1), in_table=in_table, limit=limit)]
        last = m.end()
    out.append(_escaped(text[last:]))
    return "".join(out)


def code_span(text: str) -> str:
    """Untrusted text (a name, a path, a word of a command) as one inline code span."""
    return _code(text)


def inline_text(text: str, limit: int = 2_000) -> str:
    """Untrusted prose (an error message, a note) as inert inline Markdown."""
    return _md(text, limit)


def _code(text: str, *, in_table: bool = False, limit: int = _CELL_LIMIT) -> str:
    """``text`` as a code span, with a fence longer than any backtick run inside."""
    # An empty span would be a bare fence that pairs with the next span's: a space.
    text = _shorten(_one_line(text), limit) or " "
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    # In a table even a pipe inside a code span must be escaped:
    # https://github.github.com/gfm/#tables-extension-
    return span.replace("|", "\\|") if in_table else span


def _fence(lines: Sequence[str]) -> str:
    """A backtick fence longer than any run of backticks in ``lines`` (at least 3)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


# ---------------------------------------------------------------- suggestions


def _qualname_from_id(target_id: str) -> str:
    """``Target.id`` is ``path::qualname@line``; fall back to the whole id."""
    _, sep, rest = target_id.partition("::")
    if not sep:
        return target_id
    name, at, line = rest.rpartition("@")
    return name if at and line.isdigit() else rest


def suggestion_comment(
    s: Suggestion,
    *,
    offline: bool,
    action: Action,
    reason: str = "",
    qualname: str | None = None,
) -> str:
    """The body of one review comment carrying a one-click ```suggestion.

    A one-line headline, the suggestion block (its fence longer than any backtick run
    in the suggested lines, which GitHub accepts), then the hidden marker that makes
    re-runs idempotent.  GitHub's docs on suggestions:
    https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request
    """
    name = _code(qualname or _qualname_from_id(s.target_id))
    if action == Action.UPDATED:
        headline = f"update the stale docstring of {name}"
        if reason.strip():
            headline += f" ({_md(reason)})"
    elif action == Action.ADDED:
        headline = f"add a docstring to {name}"
    else:
        headline = f"suggested docstring for {name}"
    if offline:
        headline += f" — {OFFLINE_NOTE}"
    fence = _fence(s.body_lines)
    block = "\n".join([f"{fence}suggestion", *s.body_lines, fence])
    return f"📝 docgen: {headline}\n\n{block}\n\n{marker(s.target_id, s.docstring_hash)}"


def comment_for(outcome: Outcome) -> str | None:
    """The review comment for an outcome that carries a suggestion, else None."""
    if outcome.suggestion is None:
        return None
    return suggestion_comment(
        outcome.suggestion,
        offline=outcome.offline,
        action=outcome.action,
        reason=outcome.reason,
        qualname=outcome.target.qualname,
    )


# ---------------------------------------------------------------- summary data


def _outcome_key(o: Outcome) -> tuple[str, int, str]:
    return (o.target.path, o.target.def_line, o.target.qualname)


def _skip_key(s: Skip) -> tuple[str, int, str]:
    return (s.path, s.line or 0, s.qualname or "")


@dataclass(frozen=True)
class _SkippedItem:
    path: str
    line: int | None
    qualname: str | None
    reason: str


def _skipped_items(report: Report) -> list[_SkippedItem]:
    items = [_SkippedItem(s.path, s.line, s.qualname, s.reason) for s in report.skips]
    items += [
        _SkippedItem(o.target.path, o.target.def_line, o.target.qualname, _note(o))
        for o in report.outcomes
        if o.action == Action.SKIPPED
    ]
    return sorted(items, key=lambda i: (i.path, i.line or 0, i.qualname or "", i.reason))


def _counts(report: Report) -> dict[str, int]:
    counts = {action.value: 0 for action in Action}
    for outcome in report.outcomes:
        counts[outcome.action.value] += 1
    counts[Action.SKIPPED.value] += len(report.skips)
    return counts


def _is_offline(report: Report) -> bool:
    return report.provider == "offline" or report.model == "offline"


def _cost_text(report: Report) -> str:
    return "$0 (offline)" if _is_offline(report) else f"${report.cost_usd:.4f}"


def _budget_percent(report: Report) -> float | None:
    return None if report.budget <= 0 else 100.0 * report.usage.total / report.budget


def _all_excluded(report: Report) -> bool:
    """True when the config's include/exclude left out every changed Python file."""
    return (
        not report.outcomes
        and bool(report.skips)
        and all(s.reason == EXCLUDED_BY_CONFIG for s in report.skips)
    )


def _style_used(report: Report) -> str | None:
    """The docstring style, or None when no definition was looked at (nothing used one)."""
    return report.style.value if report.outcomes else None


def _coverage_text(
    before: Coverage, after: Coverage, arrow: str = "→", *, excluded: bool = False
) -> str:
    if before.total == 0 and after.total == 0:
        if excluded:
            return "Docstring coverage: the config's include/exclude excluded every changed file"
        return "Docstring coverage: no documentable definitions in the changed files"
    delta = after.documented - before.documented
    change = "no change" if delta == 0 else f"{delta:+,} function{'' if abs(delta) == 1 else 's'}"
    return (
        f"Docstring coverage {before.percent:.1f}% {arrow} {after.percent:.1f}% ({change}; "
        f"{before.documented:,}/{before.total:,} {arrow} {after.documented:,}/{after.total:,}"
        " documented)"
    )


def _tally(report: Report) -> str:
    counts = _counts(report)
    offered = f"{counts['offered']:,} offered, " if counts["offered"] else ""
    text = (
        f"{counts['added']:,} added, {counts['updated']:,} updated, {offered}"
        f"{counts['skipped']:,} skipped"
    )
    if counts["unchanged"]:
        text += f", {counts['unchanged']:,} unchanged"
    return text


def _tokens_text(report: Report) -> str:
    usage = report.usage
    text = (
        f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion = {usage.total:,}"
    )
    percent = _budget_percent(report)
    if percent is not None:
        text += f" of {report.budget:,} budget ({percent:.1f}% used)"
    return text


def _model_text(report: Report, code: Callable[[str], str], text: Callable[[str], str]) -> str:
    if _is_offline(report):
        return "none (offline skeletons)"
    model = code(report.model) if report.model else "none"
    if report.provider:
        model = f"{model} via {text(report.provider)}"
    if report.response_mode:  # how the answer's shape was asked for: servers differ
        model += f", answers as {text(report.response_mode)}"
    return model


def check_title(report: Report) -> str:
    """A one-line title for the check run's ``output.title``."""
    return f"docgen: {_tally(report)}"


# ---------------------------------------------------------------- markdown


@dataclass(frozen=True)
class _Group:
    """Lines of the summary that can be dropped row by row to fit the size limit."""

    kind: str  # "table" | "skipped"
    head: tuple[str, ...]
    rows: tuple[str, ...]


_TABLE_HEAD = ("| function | line | action | note |", "| --- | ---: | --- | --- |")


def _note(outcome: Outcome) -> str:
    """What the reports say about one definition: stale or not, why, how it was written."""
    parts = []
    target = outcome.target
    reason = outcome.reason.strip()
    if target.decision == Decision.STALE and not reason.startswith("stale docstring"):
        stale = target.reason.strip()
        parts.append(f"stale docstring: {stale}" if stale else "stale docstring")
        if reason == stale:
            reason = ""
    if reason:
        parts.append(reason)
    if outcome.offline:
        parts.append("offline skeleton")
    return "; ".join(parts)


def _table_groups(report: Report) -> list[_Group]:
    by_path: dict[str, list[Outcome]] = {}
    for outcome in sorted(report.outcomes, key=_outcome_key):
        if outcome.action in (Action.ADDED, Action.UPDATED, Action.OFFERED):
            by_path.setdefault(outcome.target.path, []).append(outcome)
    groups = []
    for path, outcomes in by_path.items():
        rows = tuple(
            f"| {_code(o.target.qualname, in_table=True)} | {o.target.def_line} "
            f"| {o.action.value} | {_md(_note(o), in_table=True)} |"
            for o in outcomes
        )
        groups.append(_Group("table", ("", f"#### {_code(path)}", "", *_TABLE_HEAD), rows))
    return groups


def _skipped_line(item: _SkippedItem) -> str:
    where = f"{item.path}:{item.line}" if item.line is not None else item.path
    name = f" {_code(item.qualname)}" if item.qualname else ""
    return f"- {_code(where)}{name} — {_md(item.reason) or 'skipped'}"


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
        f"### 📝 docgen — {_tally(report)}",
        "",
        _coverage_text(
            report.coverage_before, report.coverage_after, excluded=_all_excluded(report)
        ),
    ]
    groups = _table_groups(report)
    if not groups:
        head += ["", "No docstrings to suggest."]
    elif _is_offline(report):
        head += [
            "",
            "> Offline run: these docstrings are skeletons derived from the signatures,"
            " written without an LLM; edit them before committing.",
        ]
    skipped = _skipped_items(report)
    if skipped:
        groups.append(
            _Group("skipped", ("", "#### Skipped", ""), tuple(_skipped_line(i) for i in skipped))
        )

    tail = ["", "#### Run", ""]
    tail.append(f"- Tokens: {_tokens_text(report)}")
    tail.append(f"- Cost: {_cost_text(report)}")
    style = _style_used(report)
    tail.append(
        f"- Model: {_model_text(report, _code, _md)}" + (f"; style: {style}" if style else "")
    )
    tail.append(f"- Cache hits: {report.cache_hits:,}")
    tail.append(f"- Elapsed: {report.elapsed_s:.1f} s")
    if report.notes:
        tail += ["", "#### Notes", ""]
        tail += [f"- {_md(note, 2_000)}" for note in report.notes]

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


# ---------------------------------------------------------------------- json


def _coverage_json(c: Coverage) -> dict[str, object]:
    return {"documented": c.documented, "total": c.total, "percent": round(c.percent, 2)}


def _suggestion_json(s: Suggestion) -> dict[str, object]:
    return {
        "path": s.path,
        "start": s.start,
        "end": s.end,
        "body_lines": list(s.body_lines),
        "target_id": s.target_id,
        "docstring_hash": s.docstring_hash,
    }


def json_report(report: Report) -> dict[str, object]:
    """The summary as JSON-ready data (``docgen review --format json``)."""
    outcomes = sorted(report.outcomes, key=_outcome_key)
    percent = _budget_percent(report)
    return {
        "version": 1,
        "counts": _counts(report),
        "coverage": {
            "before": _coverage_json(report.coverage_before),
            "after": _coverage_json(report.coverage_after),
        },
        "usage": {
            "prompt_tokens": report.usage.prompt_tokens,
            "completion_tokens": report.usage.completion_tokens,
            "total_tokens": report.usage.total,
            "budget": report.budget,
            "budget_used_percent": None if percent is None else round(percent, 2),
        },
        "cost_usd": round(report.cost_usd, 6),
        "offline": _is_offline(report),
        "model": report.model,
        "provider": report.provider,
        "response_mode": report.response_mode,
        "style": _style_used(report),
        "cache_hits": report.cache_hits,
        "elapsed_s": round(report.elapsed_s, 3),
        "outcomes": [
            {
                "id": o.target.id,
                "path": o.target.path,
                "qualname": o.target.qualname,
                "kind": o.target.kind,
                "line": o.target.def_line,
                "end_line": o.target.end,
                "decision": o.target.decision.value,
                "action": o.action.value,
                "reason": o.reason,
                "offline": o.offline,
                "docstring": o.docstring,
            }
            for o in outcomes
        ],
        "suggestions": [_suggestion_json(o.suggestion) for o in outcomes if o.suggestion],
        # Proven replacements GitHub cannot take as suggestions (Action.OFFERED).
        "offered": [_suggestion_json(o.replacement) for o in outcomes if o.replacement],
        # Every skipped item, as in the text report: whole files (report.skips) and
        # definitions (outcomes skipped), so that len(skips) == counts["skipped"].
        "skips": [
            {"path": i.path, "reason": i.reason, "qualname": i.qualname, "line": i.line}
            for i in _skipped_items(report)
        ],
        "notes": list(report.notes),
    }


# ----------------------------------------------------------------- annotations


def annotations(report: Report) -> list[dict[str, object]]:
    """Check-run annotations for definitions whose docstring slot is outside the diff.

    Review comments can only target lines of the diff (DESIGN.md, invariant 2), so
    these are reported on the check run instead, with the proposed docstring in
    ``raw_details`` when there is one.  Shape:
    https://docs.github.com/en/rest/checks/runs#create-a-check-run
    """
    out: list[dict[str, object]] = []
    for o in sorted(report.outcomes, key=_outcome_key):
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
            "title": _shorten(f"{what}: {target.qualname}", ANNOTATION_TITLE_LIMIT),
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
        "title": _shorten(f"{what}: {target.qualname}", ANNOTATION_TITLE_LIMIT),
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
    fence = _fence(r.body_lines)
    return "\n".join(
        [
            "",
            f"#### {_code(r.path)} {_span(r.start, r.end)}: {_code(o.target.qualname)}",
            "",
            _md(_note(o), 2_000),
            "",
            f"Replace {_span(r.start, r.end)} of {_code(r.path)} with:",
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
        for o in sorted(report.outcomes, key=_outcome_key)
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


# ------------------------------------------------------------------------ text


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def text_report(report: Report) -> str:
    """The terminal view of ``docgen review``: one line per definition, then totals."""
    keyed: list[tuple[tuple[str, int, str], tuple[str, ...]]] = []
    for o in report.outcomes:
        where = f"{o.target.path}:{o.target.def_line}"
        row = (where, _one_line(o.target.qualname), o.action.value, _one_line(_note(o)))
        keyed.append((_outcome_key(o), row))
    for s in report.skips:
        where = f"{s.path}:{s.line}" if s.line is not None else s.path
        row = (where, _one_line(s.qualname or "-"), Action.SKIPPED.value, _one_line(s.reason))
        keyed.append((_skip_key(s), row))
    rows = [row for _, row in sorted(keyed)]
    lines = _columns(rows) if rows else ["nothing to document"]
    lines += ["", _tally(report)]
    lines.append(
        _coverage_text(
            report.coverage_before,
            report.coverage_after,
            arrow="->",
            excluded=_all_excluded(report),
        )
    )
    lines.append(f"tokens {_tokens_text(report)}")
    model = _model_text(report, _one_line, _one_line)
    style = _style_used(report)
    lines.append(
        f"cost {_cost_text(report)}; model {model}; "
        + (f"style {style}; " if style else "")
        + f"cache hits {report.cache_hits:,}; {report.elapsed_s:.1f} s"
    )
    lines += [f"note: {_one_line(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _lines(text: str) -> list[str]:
    """Lines split at ``\n`` only (``str.splitlines`` also splits at form feeds etc.)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def unified_diff(path: str, head_text: str, new_text: str) -> str:
    """What ``docgen review --apply`` would change in ``path``, as a git-style diff.

    Line endings are kept as they are (a CRLF file shows CRLF lines); a last line
    without a newline is marked the way git marks it.  Empty when nothing changes.
    """
    out: list[str] = []
    for line in difflib.unified_diff(
        _lines(head_text),
        _lines(new_text),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    ):
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def fenced_diff(diff: str) -> str:
    """``diff`` in a Markdown code fence longer than any backtick run inside it."""
    if not diff:
        return ""
    fence = _fence(diff.split("\n"))
    body = diff if diff.endswith("\n") else diff + "\n"
    return f"{fence}diff\n{body}{fence}\n"


__all__ = [
    "OFFLINE_NOTE",
    "OUTSIDE_DIFF",
    "SUMMARY_LIMIT",
    "annotations",
    "cap_bytes",
    "check_title",
    "comment_for",
    "cut_to_bytes",
    "fenced_diff",
    "json_report",
    "markdown_report",
    "marker",
    "offered_text",
    "parse_marker",
    "suggestion_comment",
    "text_report",
    "unified_diff",
    "utf8_size",
]
