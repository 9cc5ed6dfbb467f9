"""What a run prints: a line per request, the reasons under a failure, a summary.

Every byte goes through the run's `Redactor` first. Colour is used only on a
terminal, and never when ``NO_COLOR`` is set (https://no-color.org) or
``--no-color`` is given.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from runner.errors import Location
from runner.secrets import Redactor

__all__ = [
    "Outcome",
    "Reporter",
    "RunListener",
    "RunSummary",
    "RunTotals",
    "State",
    "TextSink",
    "use_color",
]


class State(enum.Enum):
    """How one send of a request ended."""

    PASSED = "passed"
    FAILED = "failed"  # a response came and did not meet the expectations
    ERROR = "error"  # no response: network, timeout, token endpoint
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one send of a request (a repeated request has several).

    `location` is where the request is written in its suite file (reports
    and CI annotations point there); `url` is as sent, or as written when
    the request was skipped before rendering. Neither is masked here:
    every sink masks what it writes. `attempts` counts the sends behind
    this outcome when a ``retry`` sent it more than once.
    """

    suite: str
    request: str
    method: str
    url: str
    state: State
    status: int | None = None
    elapsed_ms: float | None = None
    reasons: tuple[str, ...] = ()
    location: Location | None = None
    attempts: int = 1  # sends it took, retries and polling included
    # With more than one attempt: all of them and the waits between, in ms.
    spent_ms: float | None = None


@dataclass(slots=True)
class RunTotals:
    """Counts for the summary line, updated as outcomes arrive."""

    by_state: dict[State, int] = field(default_factory=lambda: dict.fromkeys(State, 0))

    def add(self, state: State) -> None:
        self.by_state[state] += 1

    @property
    def requests(self) -> int:
        return sum(self.by_state.values())

    @property
    def all_passed(self) -> bool:
        return self.by_state[State.FAILED] == 0 and self.by_state[State.ERROR] == 0


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run amounted to, handed to every listener when it ends."""

    suites: int
    totals: RunTotals
    tokens_fetched: int
    seconds: float
    interrupted: bool = False
    # Token requests sent, retries and refusals included (>= tokens_fetched).
    token_requests: int = 0
    deselected: int = 0  # requests --tag left out, as written
    tokens_from_cache: int = 0  # read from --token-cache instead of fetched
    # What the run returns (`runner.exits.ExitStatus`); the JSON report
    # gives this value rather than working out its own.
    exit_status: int = 0


class RunListener(Protocol):
    """A sink of a run's results: the terminal, a report file, CI annotations.

    `outcome` is called from the worker threads as each send ends, so an
    implementation takes its own lock; `finished` is called once, from the
    main thread, after the last outcome. Each sink masks what it writes.
    """

    def outcome(self, outcome: Outcome) -> None: ...

    def finished(self, summary: RunSummary) -> None: ...


class TextSink(Protocol):
    """Where a sink writes: a `TextIO`, or a live progress line standing before one.

    `runner.progress.LiveCount` takes its line away before each write.
    """

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


_MARKS = {
    State.PASSED: ("PASS", "32"),
    State.FAILED: ("FAIL", "31"),
    State.ERROR: ("ERR ", "31;1"),
    State.SKIPPED: ("SKIP", "33"),
}


def use_color(stream: TextIO, *, no_color: bool, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, unless the user said otherwise."""
    if no_color or environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Reporter:
    """Writes outcomes as they arrive, from any worker thread, masked."""

    def __init__(self, out: TextSink, redactor: Redactor, *, color: bool) -> None:
        self._out = out
        self._redactor = redactor
        self._color = color
        self._lock = threading.Lock()

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._color else text

    def outcome(self, outcome: Outcome) -> None:
        """Print one request's line, and its reasons indented below it."""
        mark, code = _MARKS[outcome.state]
        parts = [
            self._paint(mark, code),
            f"{outcome.suite} > {outcome.request}",
            f"{outcome.method} {outcome.url}",
        ]
        if outcome.status is not None:
            parts.append(str(outcome.status))
        if outcome.elapsed_ms is not None:
            parts.append(f"{outcome.elapsed_ms:.0f} ms")
        if outcome.attempts > 1:
            parts.append(f"{outcome.attempts} attempts")
        lines = ["  ".join(parts)]
        lines += [f"       {reason}" for reason in outcome.reasons]
        text = self._redactor.redact("\n".join(lines) + "\n")

        with self._lock:
            self._out.write(text)

    def message(self, text: str) -> None:
        """A line that is not a request's outcome (warnings, notes)."""
        with self._lock:
            self._out.write(self._redactor.redact(text.rstrip("\n") + "\n"))

    def finished(self, summary: RunSummary) -> None:
        """The closing line: counts, tokens fetched and wall time."""
        totals, suites = summary.totals, summary.suites
        tokens_fetched, seconds = summary.tokens_fetched, summary.seconds
        counts: Sequence[tuple[State, str]] = (
            (State.PASSED, "passed"),
            (State.FAILED, "failed"),
            (State.ERROR, "could not be sent"),
            (State.SKIPPED, "skipped"),
        )
        shown = [
            f"{totals.by_state[state]} {label}"
            for state, label in counts
            if totals.by_state[state] or state in (State.PASSED, State.FAILED)
        ]
        if summary.deselected:
            shown.append(f"{summary.deselected} deselected")
        plural = "" if suites == 1 else "s"
        tokens = "1 token" if tokens_fetched == 1 else f"{tokens_fetched} tokens"
        tokens += " fetched"
        if summary.token_requests > tokens_fetched:
            # Say so when retries or refusals cost more requests than tokens.
            asked = summary.token_requests
            tokens += f" in {asked} token request{'' if asked == 1 else 's'}"
        if summary.tokens_from_cache:
            tokens += f", {summary.tokens_from_cache} from cache"
        line = (
            f"{suites} suite{plural}, {totals.requests} requests: "
            f"{', '.join(shown)}; {tokens}; {seconds:.2f} s"
        )
        code = "32" if totals.all_passed else "31"
        self.message(self._paint(line, code))
