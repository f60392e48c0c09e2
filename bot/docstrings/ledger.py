"""What a run spent, call by call, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import price_for
from bot.docstrings.models import Usage

if TYPE_CHECKING:
    from bot.docstrings.budget import CallCharge

@dataclass(frozen=True)
class LedgerEntry:
    """One provider answer (or one answer taken from the cache)."""

    model: str
    usage: Usage
    cost_usd: float
    cached: bool = False
    price_known: bool = True


@dataclass
class Ledger:
    """What a run spent, call by call, with costs from :func:`bot.config.price_for`."""

    entries: list[LedgerEntry] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)  # tokens charged per lost attempt

    def record(self, model: str, usage: Usage, *, cached: bool = False) -> LedgerEntry:
        """Add one call.  ``cached`` entries cost nothing; their usage counts as saved."""
        price = price_for(model)
        cost = 0.0
        if price is not None and not cached:
            cost = (
                usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion
            ) / 1_000_000
        entry = LedgerEntry(model, usage, cost, cached, price is not None)
        self.entries.append(entry)
        return entry

    @property
    def usage(self) -> Usage:
        """Tokens actually spent (cache hits excluded)."""
        total = Usage()
        for e in self.entries:
            if not e.cached:
                total += e.usage
        return total

    @property
    def saved(self) -> Usage:
        """Tokens the cache saved, as recorded for cached entries."""
        total = Usage()
        for e in self.entries:
            if e.cached:
                total += e.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.entries)

    @property
    def calls(self) -> int:
        return sum(1 for e in self.entries if not e.cached)

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        """Models charged without a known price (their cost counts as 0)."""
        return tuple(sorted({e.model for e in self.entries if not e.price_known and not e.cached}))

    def record_unanswered(self, charge: CallCharge) -> None:
        """Note what a call's unanswered attempts were charged (they have no usage)."""
        self.unanswered += charge.lost

    @property
    def notes(self) -> list[str]:
        """Lines for the summary, e.g. that a cost is incomplete."""
        notes = [
            f"price unknown for model {m!r}: its cost is counted as $0"
            for m in self.unpriced_models
        ]
        if self.unanswered:
            n = len(self.unanswered)
            notes.append(
                f"{n} model call attempt{'s' if n != 1 else ''} got no answer (timeout or "
                f"lost connection); charged to the budget at their full reservation, "
                f"{sum(self.unanswered):,} tokens, which the server may have used"
            )
        return notes
