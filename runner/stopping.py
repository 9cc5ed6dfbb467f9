"""Ending a run early: an interrupt, or ``--fail-fast`` after a failure.

Either way the run's `RunStop` is set: workers finish the request in hand
and send nothing more, reporting every request not yet sent as skipped with
`RunStop.reason`.
"""

from __future__ import annotations

import threading

from runner.output import Outcome, RunSummary, State

__all__ = ["FailFast", "RunStop"]


class RunStop(threading.Event):
    """The run's stop event, and why it was set.

    It is a `threading.Event`, so everything that waits on the run's stop
    event (delays, retries) wakes up whatever set it. The first reason
    given wins; later calls to `stop` change nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reason = "run interrupted"
        self._reason_lock = threading.Lock()

    @property
    def reason(self) -> str:
        """Why requests are not sent, for their skip reason."""
        with self._reason_lock:
            return self._reason

    def stop(self, reason: str) -> None:
        """Set the event with `reason`, unless it is set already."""
        with self._reason_lock:
            if self.is_set():
                return
            self._reason = reason
            self.set()


class FailFast:
    """A run listener that stops the run at the first failed or errored send.

    It is called in the worker that made the send, before that worker goes
    on, so its suite sends nothing more; requests in flight on other
    workers finish and are judged as usual.
    """

    def __init__(self, stop: RunStop) -> None:
        self._stop = stop

    def outcome(self, outcome: Outcome) -> None:
        """Stop the run if `outcome` is a failure or an error."""
        if outcome.state in (State.FAILED, State.ERROR):
            where = f"{outcome.suite} > {outcome.request}"
            self._stop.stop(f"not sent: --fail-fast after a failure in {where}")

    def finished(self, summary: RunSummary) -> None:
        """Nothing to do at the end."""
