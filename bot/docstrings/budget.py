"""The per-PR token budget: reservations before a call, settlement after it.

The budget invariant (DESIGN.md, invariant 3): the tokens the provider reports as used
never add up to more than the limit, provided it respects ``max_tokens`` and our prompt
estimate is not below its own count.  The estimate carries a safety margin
(:func:`bot.docstrings.tokens.with_margin`); before a call the pipeline reserves prompt estimate +
``max_tokens`` (:meth:`TokenBudget.reserve`), afterwards it settles with the reported
usage (:meth:`TokenBudget.settle`), releasing what was not used.  A shared quota (the
installation's caps, :class:`InstallationQuota`) can take part in every reservation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.docstrings import quota

log = logging.getLogger(__name__)

class BudgetExceeded(Exception):
    """A charge or reservation would take the budget over its limit."""

    def __init__(self, needed: int, remaining: int) -> None:
        super().__init__(f"token budget exhausted (needs {needed}, {remaining} left)")
        self.needed = needed
        self.remaining = remaining


class CapReached(BudgetExceeded):
    """A shared quota (the installation's day or month cap) has no room for a call."""

    def __init__(self, hit: quota.CapHit) -> None:
        super().__init__(hit.needed, max(0, hit.limit - hit.used))
        self.hit = hit
        self.args = (hit.short(),)


class Pool(Protocol):
    """A quota shared beyond one run, reserved from together with a :class:`TokenBudget`."""

    def reserve(self, tokens: int) -> object:
        """Hold ``tokens``; raises :class:`BudgetExceeded` (e.g. :class:`CapReached`)."""
        ...

    def settle(self, hold: object, actual: int) -> None: ...


class InstallationQuota:
    """The installation's day and month caps as a :class:`Pool` (counters in ``store``).

    Reserving is one write to the store (SQLite or Redis) per model call attempt.
    A settle the store cannot record leaves the hold counted in full: the cap errs on
    the side of the one who pays.
    """

    def __init__(
        self,
        store: quota.CapStore,
        installation_id: int,
        caps: quota.Caps,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.installation_id = installation_id
        self.caps = caps
        self.clock = clock

    def exhausted(self) -> quota.CapHit | None:
        """The cap already reached (no room for a single token), if any."""
        used = self.store.cap_used(self.installation_id)
        return quota.check(used, 1, self.caps, self.clock())

    def reserve(self, tokens: int) -> quota.Hold:
        held = self.store.reserve_tokens(self.installation_id, tokens, self.caps)
        if isinstance(held, quota.CapHit):
            raise CapReached(held)
        return held

    def settle(self, hold: object, actual: int) -> None:
        assert isinstance(hold, quota.Hold)
        try:
            self.store.settle_tokens(hold, actual)
        except Exception as exc:  # the job must not fail (and call again) over this
            log.warning(
                "could not settle %d reserved tokens of installation %d (%s); they stay counted",
                hold.tokens,
                hold.installation_id,
                exc,
            )


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one call until :meth:`TokenBudget.settle`."""

    id: int
    tokens: int


@dataclass
class TokenBudget:
    """A per-run token quota: ``spent`` (settled), plus tokens reserved for calls in flight.

    A call reserves its worst case (prompt estimate + ``max_tokens``), then settles
    with the provider's ``usage``.  If a call used more than it reserved (our estimate
    was low), the largest such excess becomes ``slack``: it is added to every later
    reservation, so no later call can start unless it fits even if the estimate is
    off by as much again.
    """

    limit: int
    spent: int = 0
    reserved: int = 0
    slack: int = 0
    overruns: list[tuple[int, int]] = field(default_factory=list)  # (reserved, actual)
    # A quota beyond this run (the installation's caps): every reservation must fit
    # there too; ``refused`` keeps the last time it did not.
    pool: Pool | None = field(default=None, repr=False, compare=False)
    refused: BudgetExceeded | None = field(default=None, repr=False, compare=False)
    _open: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _holds: dict[int, object] = field(default_factory=dict, init=False, repr=False, compare=False)
    _next_id: int = field(default=1, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 0 or self.spent < 0:
            raise ValueError("a token budget cannot be negative")

    @property
    def remaining(self) -> int:
        """Tokens neither spent nor reserved (never negative)."""
        return max(0, self.limit - self.spent - self.reserved)

    def can_afford(self, tokens: int) -> bool:
        """Whether a call that may use ``tokens`` can start now (slack included)."""
        return tokens + self.slack <= self.remaining

    def charge(self, tokens: int) -> None:
        """Spend ``tokens`` outright; raises :class:`BudgetExceeded` past the limit."""
        if tokens < 0:
            raise ValueError("cannot charge a negative number of tokens")
        if tokens > self.remaining:
            raise BudgetExceeded(tokens, self.remaining)
        self.spent += tokens

    def reserve(self, tokens: int) -> Reservation:
        """Hold ``tokens`` (+ ``slack``) for a call; raises :class:`BudgetExceeded`."""
        if tokens < 0:
            raise ValueError("cannot reserve a negative number of tokens")
        needed = tokens + self.slack
        if needed > self.remaining:
            raise BudgetExceeded(needed, self.remaining)
        hold = None
        if self.pool is not None:
            try:
                hold = self.pool.reserve(needed)
            except BudgetExceeded as exc:
                self.refused = exc
                raise
        reservation = Reservation(self._next_id, needed)
        self._next_id += 1
        self._open[reservation.id] = needed
        if hold is not None:
            self._holds[reservation.id] = hold
        self.reserved += needed
        return reservation

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Replace a reservation by the tokens the call actually used.

        ``actual`` is charged even when it exceeds the reservation (the provider has
        billed it); the excess is recorded in ``overruns`` and raises ``slack``.
        """
        held = self._open.pop(reservation.id, None)
        if held is None:
            raise ValueError("reservation already settled or not from this budget")
        actual = max(0, actual)
        self.reserved -= held
        self.spent += actual
        hold = self._holds.pop(reservation.id, None)
        if hold is not None and self.pool is not None:
            self.pool.settle(hold, actual)
        if actual > held:
            self.overruns.append((held, actual))
            self.slack = max(self.slack, actual - held)


@dataclass
class CallCharge:
    """One provider call's hold on the budget, across its attempts.

    :meth:`open` reserves ``tokens`` (prompt estimate + ``max_tokens``).  An attempt
    whose answer never came (timeout, dropped connection) may still be processed and
    billed in full, so :meth:`unanswered` charges what it held; a retry must
    :meth:`again` reserve before it is sent, and is not sent when the budget has no room.
    :meth:`settle` ends the call with the usage the provider reported (0 for a call
    refused outright: providers do not bill those).
    """

    budget: TokenBudget
    tokens: int
    reservation: Reservation | None = None
    lost: list[int] = field(default_factory=list)  # charged per attempt that never answered
    # What an attempt needs now, asked again before each retry: answers that landed
    # meanwhile may have taught a larger tokenizer ratio (ModelProfile).  Never less.
    resize: Callable[[], int] | None = field(default=None, repr=False)

    def open(self) -> None:
        """Reserve for the first attempt; raises :class:`BudgetExceeded`."""
        self.reservation = self.budget.reserve(self.tokens)

    def unanswered(self) -> None:
        if self.reservation is None:
            return
        held = self.reservation.tokens
        self.budget.settle(self.reservation, held)
        self.reservation = None
        self.lost.append(held)

    def again(self) -> str | None:
        if self.reservation is not None:
            return None  # the last attempt was answered (an error): its hold still stands
        if self.resize is not None:
            self.tokens = max(self.tokens, self.resize())
        try:
            self.reservation = self.budget.reserve(self.tokens)
        except BudgetExceeded as exc:
            return str(exc)
        return None

    def settle(self, actual: int) -> None:
        """End the call: the open reservation becomes ``actual`` tokens."""
        if self.reservation is not None:
            self.budget.settle(self.reservation, actual)
            self.reservation = None
        elif actual > 0:  # pragma: no cover - an answer always comes with a reservation
            self.budget.spent += actual
