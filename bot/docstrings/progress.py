"""Progress of a run, for a person watching a terminal (issue 13).

The pipeline reports three things as they happen: a file parsed, definitions sent to
the model, answers received.  :class:`Progress` ignores them (the App, a CI log, a
pipe, ``--quiet``); :class:`TerminalProgress` keeps one line on a terminal up to date,
with the counts and the time elapsed, and erases it when the run ends, so the report
that follows on stdout reads as it would without it.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

# Control sequences every terminal emulator in use understands (ECMA-48 "EL"):
# carriage return to column 0, then erase to the end of the line.
_CLEAR = "\r\x1b[K"
REFRESH_S = 0.5  # redraw this often while waiting, so the elapsed time keeps moving


class Progress:
    """Counts of a run's work; this base class shows nothing.  Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files_total = 0
        self.files_done = 0
        self.sent = 0
        self.answered = 0

    def start(self, files_total: int) -> None:
        with self._lock:
            self.files_total = files_total
        self._changed()

    def file_parsed(self) -> None:
        with self._lock:
            self.files_done += 1
        self._changed()

    def items_sent(self, n: int) -> None:
        with self._lock:
            self.sent += n
        self._changed()

    def answers_received(self, n: int) -> None:
        with self._lock:
            self.answered += n
        self._changed()

    def _changed(self) -> None:
        """Called after every count; subclasses show it."""

    def close(self) -> None:
        """The run is over (also when it failed)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TerminalProgress(Progress):
    """One line on ``stream`` (a terminal), rewritten in place and erased at the end."""

    def __init__(self, stream: TextIO, clock=time.monotonic) -> None:
        super().__init__()
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._stop = threading.Event()
        self._shown = False
        self._ticker = threading.Thread(target=self._tick, name="docgen-progress", daemon=True)
        self._ticker.start()

    def line(self) -> str:
        with self._lock:
            files, total = self.files_done, self.files_total
            sent, answered = self.sent, self.answered
        elapsed = self._clock() - self._started
        text = f"docgen: files parsed {files}/{total}"
        if sent:
            text += f" · sent {sent} · answered {answered}"
        return f"{text} · {elapsed:.1f}s"

    def _draw(self) -> None:
        text = self.line()
        with self._lock:
            if self._stop.is_set():
                return
            try:
                self._stream.write(_CLEAR + text)
                self._stream.flush()
                self._shown = True
            except (OSError, ValueError):  # the terminal went away: stop drawing
                self._stop.set()

    def _changed(self) -> None:
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._draw()

    def close(self) -> None:
        with self._lock:
            if self._stop.is_set() and not self._shown:
                return
            self._stop.set()
            if self._shown:
                try:
                    self._stream.write(_CLEAR)
                    self._stream.flush()
                except (OSError, ValueError):
                    pass
                self._shown = False
        self._ticker.join(timeout=1)


def for_stream(stream: TextIO, *, quiet: bool = False) -> Progress:
    """A terminal line when ``stream`` is a terminal and not ``quiet``; else nothing."""
    if quiet:
        return Progress()
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(stream) if tty else Progress()
