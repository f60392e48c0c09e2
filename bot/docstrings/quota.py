"""What one App installation may spend: token caps per UTC day and month, and fork rules.

An org-wide installation means one admin pays for every repository and every fork PR.
The per-PR budget (:class:`bot.docstrings.budget.TokenBudget`) bounds one pull request; the caps
here bound the installation as a whole, across PRs, processes and restarts.

The rule is pure (:func:`check`); the counters live in the store — SQLite
(:class:`bot.runtime.queue.sqlite_store.SqliteStore`) or Redis (:class:`bot.runtime.queue.redis_store.RedisStore`), both behind
:class:`CapStore`.  A call *reserves* its worst case (prompt estimate + ``max_tokens``)
against the day's and the month's counters before it is sent, and settles with the
provider's ``usage`` afterwards, exactly as the per-PR budget does (invariant 3): two
PRs of one installation running at once can never both take the last room.  A
reservation a crash never settled stays counted in full — the provider may have
billed it.

Periods are UTC calendar days and months; a cap of 0 is no cap.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from bot.config import RepoConfig, Settings

Window = Literal["day", "month"]
GRACE = 24 * 3600.0  # s a period's counter is kept after it ends (settling a late call)


@dataclass(frozen=True)
class Caps:
    """Tokens an installation may use per UTC day and per UTC month (0: no cap)."""

    day: int = 0
    month: int = 0

    def __post_init__(self) -> None:
        if self.day < 0 or self.month < 0:
            raise ValueError("a token cap cannot be negative")

    @property
    def active(self) -> bool:
        return bool(self.day or self.month)

    @classmethod
    def from_settings(cls, settings: Settings) -> Caps:
        return cls(
            settings.docgen_installation_tokens_per_day,
            settings.docgen_installation_tokens_per_month,
        )


@dataclass(frozen=True)
class Periods:
    """The UTC day and month a moment falls in, as the stores key their counters."""

    day: str  # "2025-06-07"
    month: str  # "2025-06"

    @classmethod
    def at(cls, now: float) -> Periods:
        t = time.gmtime(now)
        return cls(time.strftime("%Y-%m-%d", t), time.strftime("%Y-%m", t))


def resets_at(window: Window, now: float) -> float:
    """When the ``window`` that ``now`` falls in ends: the next UTC midnight, or 1st."""
    t = time.gmtime(now)
    if window == "day":
        return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 24 * 3600.0
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def month_bounds(month: str) -> tuple[float, float]:
    """``"2025-06"`` → the epoch seconds of its first moment and of the next month's."""
    year, mon = (int(part) for part in month.split("-"))
    start = float(calendar.timegm((year, mon, 1, 0, 0, 0)))
    return start, resets_at("month", start)


@dataclass(frozen=True)
class Used:
    """Tokens counted against the caps so far in the current day and month."""

    day: int = 0
    month: int = 0

    def of(self, window: Window) -> int:
        return self.day if window == "day" else self.month


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


@dataclass(frozen=True)
class CapHit:
    """A cap a call (or a run) ran into: which, its limit, what was used, when it resets."""

    window: Window
    limit: int
    used: int
    needed: int
    resets_at: float

    @property
    def name(self) -> str:
        return "daily" if self.window == "day" else "monthly"

    def short(self) -> str:
        """One line for a skipped definition."""
        return f"the installation's {self.name} token cap ({self.limit:,}) is reached"

    def title(self) -> str:
        """The check run's title."""
        return f"Installation {self.name} token cap reached"

    def message(self) -> str:
        """What the check run says: which cap, how much was used, when it resets."""
        period = "today" if self.window == "day" else "this month"
        return (
            f"This installation's {self.name} token cap is reached: {self.used:,} of "
            f"{self.limit:,} tokens used {period} (UTC), and the next model call needs "
            f"{self.needed:,}. It resets at {_when(self.resets_at)}. An organization admin "
            f"sets the caps (DOCGEN_INSTALLATION_TOKENS_PER_DAY / _PER_MONTH); "
            f"`/docgen` runs it again after the reset."
        )


def check(used: Used, tokens: int, caps: Caps, now: float) -> CapHit | None:
    """Would ``tokens`` more take the installation over a cap?  The rule both stores apply.

    When both caps are hit the month's is named: it is the one that lasts longer.
    """
    for window in ("month", "day"):
        limit = caps.month if window == "month" else caps.day
        if limit and used.of(window) + tokens > limit:
            return CapHit(window, limit, used.of(window), tokens, resets_at(window, now))
    return None


@dataclass(frozen=True)
class Hold:
    """Tokens reserved against one installation's counters of one day and month."""

    installation_id: int
    periods: Periods
    tokens: int


class CapStore(Protocol):
    """Where the installation counters live: :class:`bot.runtime.queue.sqlite_store.SqliteStore` or the Redis one.

    Both apply :func:`check` atomically with the increment, so concurrent runs in any
    number of processes see each other's reservations.
    """

    def reserve_tokens(self, installation_id: int, tokens: int, caps: Caps) -> Hold | CapHit:
        """Count ``tokens`` against today and this month, unless a cap forbids it."""
        ...

    def settle_tokens(self, hold: Hold, actual: int) -> None:
        """Replace a hold by what the call actually used (in the hold's own periods)."""
        ...

    def cap_used(self, installation_id: int) -> Used:
        """What today and this month have counted so far."""
        ...


# --------------------------------------------------------------------- fork PRs


def pr_token_budget(settings: Settings, config: RepoConfig, *, fork: bool) -> int:
    """The per-PR token budget of a run.

    A fork PR gets the lowest of ``DOCGEN_FORK_TOKEN_BUDGET``, the repository's
    ``fork_budget`` and the PR budget that applies otherwise: the repository may
    lower what a fork costs, never raise it past what the admin allows.
    """
    budget = config.budget or settings.docgen_token_budget
    if not fork:
        return budget
    limits = [budget, settings.docgen_fork_token_budget]
    if config.fork_budget is not None:
        limits.append(config.fork_budget)
    return min(limits)


def fork_runs_automatically(settings: Settings, config: RepoConfig) -> bool:
    """Whether a fork PR is reviewed without ``/docgen``: both the admin and the repo allow it."""
    return settings.docgen_fork_auto_run and config.fork_auto_run
