"""A live count of finished and pending requests, on a terminal only.

`LiveCount` stands between the run's sinks and the terminal: every line
they write goes through it, so it can take its own line away first and put
it back after (``\\r`` and spaces, no escape sequences, so it also works
where colour is off). It shows nothing for the first second, so short runs
look exactly as they do in a log, and nothing at all when the output is not
a terminal: then the caller does not use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from runner.output import Outcome, RunSummary

__all__ = ["LiveCount", "use_progress"]

# No line for runs shorter than this: it would only flicker.
SHOW_AFTER_SECONDS = 1.0
# How often the line is checked while no request finishes, so it appears on
# time even when the first response is slow.
TICK_SECONDS = 0.25


def use_progress(stream: TextIO, *, environ: Mapping[str, str]) -> bool:
    """A live line only on a terminal that can go back to the start of a line."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and environ.get("TERM") != "dumb"


class LiveCount:
    """A ``12 done, 28 pending`` line redrawn in place under the run's output.

    It is both the stream the run's sinks write to (`write`, `flush`) and a
    run listener (`outcome`, `finished`); put it first among the listeners
    so the count is up to date when the reporter's line is written. It is
    safe to use from any thread.

    Args:
        out: The terminal.
        total: Sends the run will make, repeats included; each outcome,
            skipped ones too, counts one of them done.
        clock: Seconds on a monotonic clock (injected by tests).
        show_after: Seconds of run before the line first shows.
    """

    def __init__(
        self,
        out: TextIO,
        total: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        show_after: float = SHOW_AFTER_SECONDS,
    ) -> None:
        self._out = out
        self._total = total
        self._clock = clock
        self._show_at = clock() + show_after
        self._done = 0
        self._shown = 0  # width of the line on screen, 0 when there is none
        self._line_open = False  # a sink wrote part of a line, not its end
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------ stream

    def write(self, text: str) -> int:
        """Write a sink's text above the live line."""
        with self._lock:
            self._erase()
            self._out.write(text)
            if text:
                self._line_open = not text.endswith("\n")
            self._draw()
        return len(text)

    def flush(self) -> None:
        """Flush the terminal."""
        with self._lock:
            self._out.flush()

    # ---------------------------------------------------------- listener

    def outcome(self, outcome: Outcome) -> None:
        """Count one send done and redraw."""
        del outcome  # only the count matters here
        with self._lock:
            self._done += 1
            self._draw()

    def finished(self, summary: RunSummary) -> None:
        """Take the line away for good, before the summary is written."""
        del summary
        self.close()

    # ---------------------------------------------------------- lifetime

    def start(self) -> None:
        """Check the line every `TICK_SECONDS` until `close`, in a thread."""
        self._ticker = threading.Thread(
            target=self._tick_until_closed, name="progress", daemon=True
        )
        self._ticker.start()

    def tick(self) -> None:
        """Show the line if it is due; the ticker thread calls this."""
        with self._lock:
            self._draw()

    def close(self) -> None:
        """Stop the ticker and erase the line; it never shows again."""
        self._closed.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        with self._lock:
            self._erase()
            self._out.flush()

    def _tick_until_closed(self) -> None:
        while not self._closed.wait(TICK_SECONDS):
            self.tick()

    # ----------------------------------------------------------- drawing
    # Both are called with the lock held.

    def _draw(self) -> None:
        if self._closed.is_set() or self._line_open or self._clock() < self._show_at:
            return
        pending = max(self._total - self._done, 0)
        line = f"{self._done} done, {pending} pending"
        # Pad over the end of a longer line drawn before (counts shrink).
        padding = " " * max(self._shown - len(line), 0)
        self._out.write(f"\r{line}{padding}")
        self._out.flush()
        self._shown = len(line)

    def _erase(self) -> None:
        if self._shown:
            self._out.write("\r" + " " * self._shown + "\r")
            self._shown = 0
