"""Pacing of one installation's requests: writes one at a time, a second apart.

GitHub: "If you are making a large number of POST, PATCH, PUT, or DELETE requests for a
single user or client ID, wait at least one second between each request."
https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx
from githubkit.throttling import BaseThrottler, LocalThrottler

from bot.runtime.github.sansio import is_write


class Clock:
    """Wall time, monotonic time and sleep; tests pass a fake that only pretends to wait."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class WritePacer(BaseThrottler):
    """githubkit throttler: content-creating requests run one at a time, ≥ ``interval`` apart.

    GitHub: "If you are making a large number of POST, PATCH, PUT, or DELETE requests
    for a single user or client ID, wait at least one second between each request."
    https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests
    Reads only share githubkit's usual concurrency cap.  ``blocked_until`` (epoch
    seconds) is set when GitHub answers with a rate limit, so that every request of the
    installation stops until then, not only the one that was refused.
    """

    def __init__(
        self, interval: float = 1.0, *, clock: Clock | None = None, max_concurrency: int = 100
    ) -> None:
        self.interval = interval
        self.clock = clock or Clock()
        self.blocked_until = 0.0
        self._reads = LocalThrottler(max_concurrency)
        self._async_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._lock = threading.Lock()
        self._next_at = float("-inf")  # monotonic time before which no write may start

    def block_until(self, epoch: float) -> None:
        self.blocked_until = max(self.blocked_until, epoch)

    def _writes_lock(self) -> asyncio.Lock:
        # One lock per event loop: a client may outlive the loop it was first used in.
        loop = asyncio.get_running_loop()
        if self._async_lock is None or self._async_lock[0] is not loop:
            self._async_lock = (loop, asyncio.Lock())
        return self._async_lock[1]

    @contextlib.contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        if not is_write(request):
            with self._reads.acquire(request):
                yield
            return
        with self._lock:
            delay = self._next_at - self.clock.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                yield
            finally:
                self._next_at = self.clock.monotonic() + self.interval

    @contextlib.asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        if not is_write(request):
            async with self._reads.async_acquire(request):
                yield
            return
        async with self._writes_lock():
            delay = self._next_at - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            try:
                yield
            finally:
                self._next_at = self.clock.monotonic() + self.interval
