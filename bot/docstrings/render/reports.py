"""What ``docgen review`` prints: the terminal table, JSON, and the diff ``--apply`` makes.

Pure: a :class:`~bot.docstrings.models.Report` (or two texts) in, a string or JSON-ready data out,
ordered by path, then line, then name, so outputs compare with ``==`` in tests.
"""

from __future__ import annotations

import difflib
import re

from bot.docstrings.models import (
    Action,
    Coverage,
    Outcome,
    Report,
    Suggestion,
)
from bot.docstrings.render import tally
from bot.docstrings.render.markdown import fence_for, one_line

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


def _outcome_json(o: Outcome) -> dict[str, object]:
    return {
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


def json_report(report: Report) -> dict[str, object]:
    """The summary as JSON-ready data (``docgen review --format json``)."""
    outcomes = sorted(report.outcomes, key=tally.outcome_key)
    percent = tally.budget_percent(report)
    return {
        "version": 1,
        "counts": tally.counts(report),
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
        "offline": tally.is_offline(report),
        "model": report.model,
        "provider": report.provider,
        "response_mode": report.response_mode,
        "style": tally.style_used(report),
        "cache_hits": report.cache_hits,
        "elapsed_s": round(report.elapsed_s, 3),
        "outcomes": [_outcome_json(o) for o in outcomes],
        "suggestions": [_suggestion_json(o.suggestion) for o in outcomes if o.suggestion],
        # Proven replacements GitHub cannot take as suggestions (Action.OFFERED).
        "offered": [_suggestion_json(o.replacement) for o in outcomes if o.replacement],
        # Every skipped item, as in the text report: whole files (report.skips) and
        # definitions (outcomes skipped), so that len(skips) == counts["skipped"].
        "skips": [
            {"path": i.path, "reason": i.reason, "qualname": i.qualname, "line": i.line}
            for i in tally.skipped_items(report)
        ],
        "notes": list(report.notes),
    }


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
        row = (where, one_line(o.target.qualname), o.action.value, one_line(tally.outcome_note(o)))
        keyed.append((tally.outcome_key(o), row))
    for s in report.skips:
        where = f"{s.path}:{s.line}" if s.line is not None else s.path
        row = (where, one_line(s.qualname or "-"), Action.SKIPPED.value, one_line(s.reason))
        keyed.append((tally.skip_key(s), row))
    rows = [row for _, row in sorted(keyed)]
    lines = _columns(rows) if rows else ["nothing to document"]
    lines += ["", tally.counts_text(report)]
    lines.append(
        tally.coverage_text(
            report.coverage_before,
            report.coverage_after,
            arrow="->",
            excluded=tally.all_excluded(report),
        )
    )
    lines.append(f"tokens {tally.tokens_text(report)}")
    model = tally.model_text(report, one_line, one_line)
    style = tally.style_used(report)
    lines.append(
        f"cost {tally.cost_text(report)}; model {model}; "
        + (f"style {style}; " if style else "")
        + f"cache hits {report.cache_hits:,}; {report.elapsed_s:.1f} s"
    )
    lines += [f"note: {one_line(note)}" for note in report.notes]
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
    fence = fence_for(diff.split("\n"))
    body = diff if diff.endswith("\n") else diff + "\n"
    return f"{fence}diff\n{body}{fence}\n"
