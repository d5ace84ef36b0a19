"""The live status line of a long command: redrawn in place on a terminal, a line now and then
in a log.

``publish`` and ``simulate`` report on stderr as they go. A terminal gets one line rewritten
four times a second; anything else (a CI log, a file) gets a plain line every few seconds, as
carriage returns and escape codes would only clutter it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class LiveLine:
    """One status line on ``stream``: redrawn in place on a terminal, else a line now and then."""

    def __init__(self, stream: TextIO, interval: float = 0.25, log_interval: float = 5.0) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.interval = interval if self.terminal else log_interval
        self._shown_at = time.monotonic()

    def update(self, render: Callable[[], str]) -> None:
        """Show ``render()`` unless the line was shown less than ``interval`` ago."""
        now = time.monotonic()
        if now - self._shown_at < self.interval:
            return
        self._shown_at = now
        self._write(render())

    def finish(self, text: str) -> None:
        self._write(text)
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        if self.terminal:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class EventRate:
    """Events per second over the last refresh of the live line."""

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._count = 0
        self.value = 0.0

    def measure(self, total: int) -> float:
        now = time.monotonic()
        if now - self._at >= 0.2:
            self.value = (total - self._count) / (now - self._at)
            self._at, self._count = now, total
        return self.value


def progress_bar(done: float, width: int = 24) -> str:
    """``[#####...]  20% `` for ``done`` from 0 to 1."""
    filled = int(width * min(done, 1.0))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>4.0%} "
