"""Where the money went: the ledger's totals per installation, repository and month.

Both stores answer :meth:`usage` with :class:`UsageRow` values (SQLite sums its
ledger rows, Redis keeps the sums per month); ``docgen usage`` prints them
(:func:`table`, :func:`as_json`) and ``/metrics`` exports this month's per
installation (:func:`per_installation`).  Months are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class UsageRow:
    """What runs of one repository, under one installation, spent in one month."""

    installation_id: int | None  # None: spent before docgen recorded installations
    repo: str
    month: str  # "2025-06"
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    runs: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageSource(Protocol):
    """Either store, as ``docgen usage`` and ``/metrics`` read it."""

    def usage(self, month: str | None = None) -> list[UsageRow]: ...

    def close(self) -> None: ...


def sort_rows(rows: Iterable[UsageRow]) -> list[UsageRow]:
    """Newest month first, then by installation and repository."""
    rows = list(rows)
    rows.sort(key=lambda r: (r.installation_id is None, r.installation_id or 0, r.repo))
    rows.sort(key=lambda r: r.month, reverse=True)
    return rows


@dataclass(frozen=True)
class Totals:
    """LLM tokens, cost and runs added up (a PR's across runs, an installation's)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    runs: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, row: UsageRow | Totals) -> Totals:
        return Totals(
            self.prompt_tokens + row.prompt_tokens,
            self.completion_tokens + row.completion_tokens,
            self.cost_usd + row.cost_usd,
            self.runs + row.runs,
        )


def per_installation(rows: Iterable[UsageRow]) -> dict[int | None, Totals]:
    """The rows added up per installation."""
    out: dict[int | None, Totals] = {}
    for row in rows:
        out[row.installation_id] = out.get(row.installation_id, Totals()) + row
    return out


def _installation(value: int | None) -> str:
    return "-" if value is None else str(value)


def table(rows: Sequence[UsageRow]) -> str:
    """A plain-text table with a total line per installation and month."""
    head = ("month", "installation", "repository", "runs", "prompt", "completion", "tokens", "cost")
    body: list[tuple[str, ...]] = []
    rows = sort_rows(rows)
    groups: dict[tuple[str, int | None], list[UsageRow]] = {}
    for row in rows:
        groups.setdefault((row.month, row.installation_id), []).append(row)
    for (month, inst), members in groups.items():
        for r in members:
            body.append(_line(month, inst, r.repo, r))
        if len(members) > 1:
            total = Totals()
            for r in members:
                total = total + r
            body.append(_line(month, inst, "(all)", total))
    if not body:
        return "No LLM spending recorded yet."
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    right = {3, 4, 5, 6, 7}

    def fmt(line: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(head), *(fmt(line) for line in body)])


def _line(month: str, inst: int | None, repo: str, r: UsageRow | Totals) -> tuple[str, ...]:
    return (
        month,
        _installation(inst),
        repo,
        f"{r.runs:,}",
        f"{r.prompt_tokens:,}",
        f"{r.completion_tokens:,}",
        f"{r.tokens:,}",
        f"${r.cost_usd:.4f}",
    )


def as_json(rows: Sequence[UsageRow]) -> list[dict[str, Any]]:
    """The rows as JSON objects (``tokens`` included), newest month first."""
    return [{**asdict(r), "tokens": r.tokens} for r in sort_rows(rows)]
