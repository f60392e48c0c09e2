"""A run's deadline, which the CPU-bound stages check between files.

The job runner stops a job with ``asyncio.timeout``, but that only cancels the
*coroutine*: work handed to ``asyncio.to_thread`` (parsing every changed file, the
style sample, planning, the AST proof) keeps running in its thread until it is done,
holding the GIL and the memory of the PR.  Threads cannot be killed; they can only
stop themselves.  So the job shares one :class:`Deadline` with every stage, and each
stage calls :meth:`Deadline.check` between files (or functions): once the deadline
has passed, or the job was cancelled, the next check raises
:class:`DeadlineExceeded`, whose message says where the run stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class DeadlineExceeded(Exception):
    """The run passed its time limit (or was cancelled); ``str()`` says where."""


class Deadline:
    """A point on ``clock`` (monotonic seconds) after which work stops.

    Thread-safe: :meth:`check` only reads; :meth:`cancel` sets an event.
    """

    def __init__(
        self, seconds: float, *, clock: Callable[[], float] = time.monotonic, label: str = ""
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds
        # What the limit is called in messages ("the job's 900 s limit").
        self.label = label or f"the {seconds:g} s time limit"
        self._cancelled = threading.Event()
        # What the run was last doing at a check: where a timeout of its awaits is
        # reported (a plain attribute: a str assignment is atomic under the GIL).
        self.doing = ""

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self._cancelled.is_set() or self.clock() >= self.at

    def cancel(self) -> None:
        """Make every later :meth:`check` raise (the job was cancelled or timed out)."""
        self._cancelled.set()

    def exceeded(self) -> DeadlineExceeded:
        """The error for a run stopped from outside (its awaits timed out)."""
        return DeadlineExceeded(
            f"stopped at {self.label} while {self.doing or 'waiting for GitHub or the model'}"
        )

    def check(self, doing: str) -> None:
        """Raise :class:`DeadlineExceeded` naming ``doing`` when the time is up."""
        self.doing = doing
        if self.expired():
            raise DeadlineExceeded(f"stopped at {self.label} while {doing}")


def check(deadline: Deadline | None, doing: str) -> None:
    """:meth:`Deadline.check` for an optional deadline (the local CLI has none)."""
    if deadline is not None:
        deadline.check(doing)
