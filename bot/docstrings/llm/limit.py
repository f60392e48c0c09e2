"""How many model calls may be in flight at once, lowered by timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class AdaptiveLimit:
    """How many calls may be in flight at once: starts at ``maximum``; a timeout halves
    it (down to 1), ``recover`` answers in a row raise it by one again.

    A server that handles one request at a time queues the others, and a queued call's
    timeout runs while it waits: fewer at once keeps the time we measure the server's.
    Waiters hold no budget of their own beyond their reservation.
    """

    def __init__(self, maximum: int, recover: int = 8) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.recover = recover
        self.active = 0
        self.lowered = 0  # how often a timeout lowered the limit
        self._streak = 0
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:  # one per event loop
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    @contextlib.asynccontextmanager
    async def slot(self) -> Any:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
        try:
            yield
        finally:
            async with cond:
                self.active -= 1
                cond.notify_all()

    def timed_out(self) -> None:
        self._streak = 0
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            self.lowered += 1

    def answered(self) -> None:
        self._streak += 1
        if self._streak >= self.recover and self.limit < self.maximum:
            self.limit += 1
            self._streak = 0
