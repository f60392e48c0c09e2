"""What every view of a :class:`~bot.docstrings.models.Report` says: counts, coverage, tokens, cost,
model, skipped items and the note on each definition — as plain text, formatted by
:mod:`bot.docstrings.render.checkrun` (Markdown) and :mod:`bot.docstrings.render.reports` (terminal, JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.docstrings.models import (
    EXCLUDED_BY_CONFIG,
    Action,
    Coverage,
    Decision,
    Outcome,
    Report,
    Skip,
)


def outcome_key(o: Outcome) -> tuple[str, int, str]:
    return (o.target.path, o.target.def_line, o.target.qualname)


def skip_key(s: Skip) -> tuple[str, int, str]:
    return (s.path, s.line or 0, s.qualname or "")


@dataclass(frozen=True)
class SkippedItem:
    path: str
    line: int | None
    qualname: str | None
    reason: str


def skipped_items(report: Report) -> list[SkippedItem]:
    items = [SkippedItem(s.path, s.line, s.qualname, s.reason) for s in report.skips]
    items += [
        SkippedItem(o.target.path, o.target.def_line, o.target.qualname, outcome_note(o))
        for o in report.outcomes
        if o.action == Action.SKIPPED
    ]
    return sorted(items, key=lambda i: (i.path, i.line or 0, i.qualname or "", i.reason))


def counts(report: Report) -> dict[str, int]:
    counts = {action.value: 0 for action in Action}
    for outcome in report.outcomes:
        counts[outcome.action.value] += 1
    counts[Action.SKIPPED.value] += len(report.skips)
    return counts


def is_offline(report: Report) -> bool:
    return report.provider == "offline" or report.model == "offline"


def cost_text(report: Report) -> str:
    return "$0 (offline)" if is_offline(report) else f"${report.cost_usd:.4f}"


def budget_percent(report: Report) -> float | None:
    return None if report.budget <= 0 else 100.0 * report.usage.total / report.budget


def all_excluded(report: Report) -> bool:
    """True when the config's include/exclude left out every changed Python file."""
    return (
        not report.outcomes
        and bool(report.skips)
        and all(s.reason == EXCLUDED_BY_CONFIG for s in report.skips)
    )


def style_used(report: Report) -> str | None:
    """The docstring style, or None when no definition was looked at (nothing used one)."""
    return report.style.value if report.outcomes else None


def coverage_text(
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


def counts_text(report: Report) -> str:
    n = counts(report)
    offered = f"{n['offered']:,} offered, " if n["offered"] else ""
    text = f"{n['added']:,} added, {n['updated']:,} updated, {offered}{n['skipped']:,} skipped"
    if n["unchanged"]:
        text += f", {n['unchanged']:,} unchanged"
    return text


def tokens_text(report: Report) -> str:
    usage = report.usage
    text = (
        f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion = {usage.total:,}"
    )
    percent = budget_percent(report)
    if percent is not None:
        text += f" of {report.budget:,} budget ({percent:.1f}% used)"
    return text


def model_text(report: Report, code: Callable[[str], str], text: Callable[[str], str]) -> str:
    if is_offline(report):
        return "none (offline skeletons)"
    model = code(report.model) if report.model else "none"
    if report.provider:
        model = f"{model} via {text(report.provider)}"
    if report.response_mode:  # how the answer's shape was asked for: servers differ
        model += f", answers as {text(report.response_mode)}"
    return model


def outcome_note(outcome: Outcome) -> str:
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
