"""Outcomes gathered per suite file, back in the order they are written.

Report files are written after the run from what a `Collector` gathered.
Outcomes arrive from the worker threads interleaved across suites; the
collector sorts them by the order of the suites on the command line and of
the requests in each suite, so that a report reads the same whatever the
scheduling was. A request's outcome is matched to the request by its
`Location`, which the runner copies from the loaded request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import Location
from runner.output import Outcome, State

if TYPE_CHECKING:
    from runner.loading import LoadedSuite

__all__ = ["Collector", "Entry", "SuiteResults"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One outcome as a report lists it.

    Attributes:
        outcome: The outcome, unmasked (every sink masks what it writes).
        send: Which send of its request this was, from 1 (``repeat``).
        sends: How many sends its request asks for (``repeat``, else 1).
        ended_at: Wall-clock time (``time.time()``) when it arrived.
    """

    outcome: Outcome
    send: int
    sends: int
    ended_at: float

    @property
    def seconds(self) -> float:
        """How long the send took (all its attempts); 0 when nothing was sent."""
        outcome = self.outcome
        spent = outcome.spent_ms if outcome.spent_ms is not None else outcome.elapsed_ms
        return (spent or 0.0) / 1000


@dataclass(frozen=True, slots=True)
class SuiteResults:
    """The outcomes of one suite file, in the order of its requests.

    Attributes:
        name: The suite's name.
        file: Its file, as it was named when loaded.
        entries: Its outcomes, in request order (repeats in send order).
    """

    name: str
    file: str
    entries: tuple[Entry, ...]

    def count(self, state: State) -> int:
        """How many of its outcomes ended in `state`."""
        return sum(entry.outcome.state is state for entry in self.entries)

    @property
    def started_at(self) -> float:
        """Wall-clock time its first send started, as near as outcomes tell."""
        return min(entry.ended_at - entry.seconds for entry in self.entries)

    @property
    def seconds(self) -> float:
        """From its first send's start to its last outcome."""
        ended = max(entry.ended_at for entry in self.entries)
        return max(ended - self.started_at, 0.0)


@dataclass(frozen=True, slots=True)
class _Place:
    suite: int
    request: int
    sends: int


class Collector:
    """Keeps every outcome of a run, from any thread, to sort them at the end.

    Args:
        suites: The run's suites, in command-line order.
    """

    def __init__(self, suites: Sequence[LoadedSuite]) -> None:
        self._suites = [(suite.name, str(suite.path)) for suite in suites]
        self._places: dict[Location, _Place] = {
            request.location: _Place(index, request.index, request.model.repeat)
            for index, suite in enumerate(suites)
            for request in suite.requests
        }
        self._lock = threading.Lock()
        self._arrived: list[tuple[Outcome, float]] = []

    def add(self, outcome: Outcome) -> None:
        """Keep `outcome`; safe from any thread."""
        ended_at = time.time()
        with self._lock:
            self._arrived.append((outcome, ended_at))

    def results(self) -> list[SuiteResults]:
        """What arrived so far, per suite, in order; suites with none are left out.

        An outcome whose location matches no loaded request (none do today)
        goes in a suite of its own name after the others, in arrival order.
        """
        with self._lock:
            arrived = list(self._arrived)

        known: dict[int, list[tuple[int, Entry]]] = {}
        unknown: dict[str, list[Entry]] = {}
        sends_so_far: dict[Location, int] = {}
        for outcome, ended_at in arrived:
            location = outcome.location
            place = self._places.get(location) if location is not None else None
            if location is None or place is None:
                entry = Entry(outcome, 1, 1, ended_at)
                unknown.setdefault(outcome.suite, []).append(entry)
                continue
            send = sends_so_far.get(location, 0) + 1
            sends_so_far[location] = send
            entry = Entry(outcome, send, place.sends, ended_at)
            known.setdefault(place.suite, []).append((place.request, entry))

        results: list[SuiteResults] = []
        for index in sorted(known):
            name, file = self._suites[index]
            # A stable sort: the sends of one request stay in arrival order.
            ordered = sorted(known[index], key=lambda pair: pair[0])
            entries = tuple(entry for _, entry in ordered)
            results.append(SuiteResults(name, file, entries))
        for name, strays in unknown.items():
            location = strays[0].outcome.location
            file = location.file if location is not None else ""
            results.append(SuiteResults(name, file, tuple(strays)))
        return results
