"""Sending a request again: retries after a passing failure, and polling.

A request's ``retry`` (or its connection's) compiles into a `RetryPlan`
when the files load, its ``until`` expression included; `send_with_retries`
then sends the request until one send settles it:

- without ``until``, a send settles unless it got no response (a
  `SendError`: network, timeout) or its status is in ``on``;
- with ``until``, a send settles when the expression over its response is
  true; ``on`` does not apply, and a send that got no response is sent
  again too.

At most ``times`` more sends follow the first. Before each, the loop waits
``delay``, or what the last response's ``Retry-After`` asks for, capped at
`MAX_RETRY_AFTER_SECONDS`. All the waits of one loop together never pass
its `RetryPlan.wait_bound`, so a server can slow a request's retries down
but never make it hang. Waits go through the run's stop event: Ctrl-C (and
anything else that stops the run) cuts them short.

A token that cannot be had (`runner.errors.TokenError`) ends the loop at
once: the token manager has retried already, with its own policy.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from runner.connections import Retry
from runner.errors import RunnerError, SendError, TemplateError
from runner.expectations import ResponseView
from runner.retry_after import parse_retry_after
from runner.templates import Expression

__all__ = ["MAX_RETRY_AFTER_SECONDS", "RetryPlan", "Tried", "send_with_retries"]

log = logging.getLogger(__name__)

# The longest one wait may be when a response asks for it with Retry-After:
# a smoke test should report a struggling server, not wait an hour for it.
MAX_RETRY_AFTER_SECONDS: Final = 60.0
_TOLERANCE: Final = 1e-6


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """A ``retry`` ready to use: when to send again, and how long to wait.

    Attributes:
        times: Sends at most after the first.
        delay: Seconds to wait before each send again, unless the response
            says ``Retry-After``.
        on: Statuses that send again (not used with `until`).
        until: The polling expression over ``response``, if any.
    """

    times: int
    delay: float
    on: frozenset[int]
    until: Expression | None = None

    @classmethod
    def build(cls, retry: Retry, until: Expression | None = None) -> RetryPlan:
        """The plan of a `Retry` model; `until` is its expression, compiled."""
        return cls(
            times=retry.times,
            delay=retry.delay / 1000,
            on=frozenset(retry.on),
            until=until,
        )

    @property
    def wait_bound(self) -> float:
        """The most the waits of one loop may take together, in seconds.

        The longer of what `delay` alone makes them (``times`` x ``delay``)
        and one capped ``Retry-After``.
        """
        return max(self.times * self.delay, MAX_RETRY_AFTER_SECONDS)

    def unsettled(
        self, response: ResponseView | None, names: Mapping[str, Any]
    ) -> str | None:
        """Why this send does not settle the request, or None when it does.

        Args:
            response: What the send got, None when it got no response.
            names: Vars and captures, for `until` (``response`` is added).
        """
        if response is None:
            return "no response"
        if self.until is None:
            return f"status {response.status}" if response.status in self.on else None
        try:
            if self.until.evaluate({**names, "response": response}):
                return None
        except TemplateError as error:
            # Polling often reads a member that appears only once the
            # resource is ready: not yet true, not an error of the suite.
            return f"until is false ({error.message})"
        return "until is false"

    def wait_before_next(
        self, response: ResponseView | None, waited: float
    ) -> float | None:
        """Seconds to wait before the next send; `waited` is the loop's so far.

        `delay`, or the response's ``Retry-After`` capped, and never more than
        what `wait_bound` has left; None when a wait is due and nothing is
        left (only ever after a ``Retry-After``: `delay` alone fits).
        """
        asked = None
        if response is not None:
            asked = parse_retry_after(response.headers.get("retry-after"))
        wanted = self.delay if asked is None else min(asked, MAX_RETRY_AFTER_SECONDS)
        left = self.wait_bound - waited
        # The tolerance keeps float sums of `delay` inside their own bound.
        if wanted > 0 and left <= _TOLERANCE:
            return None
        return max(0.0, min(wanted, left))


@dataclass(frozen=True, slots=True)
class Tried:
    """What the sends of one request came to.

    Attributes:
        response: The last response, which `expect` judges and captures read;
            None when the last send got no response.
        error: Why the last send got no response.
        attempts: How many sends were made.
        unmet: ``until`` was still false at the end: a failure of its own.
        note: Why the sends ended before one settled the request (retries
            used up, the run stopping); shown only when the request fails.
        stopped: The run stopped while the loop waited to send again: the
            last response did not settle the request, so it is not judged.
    """

    response: ResponseView | None
    error: RunnerError | None = None
    attempts: int = 1
    unmet: str | None = None
    note: str | None = None
    stopped: bool = False

    def reasons(self, judged: Sequence[str] = ()) -> list[str]:
        """The reasons the request fails, given what `expect` said of it.

        Args:
            judged: The reasons `expect` gave for the last response.

        Returns:
            The error or the unmet ``until`` first, then `judged`, then the
            note; empty when the request passes.
        """
        failures = [str(self.error)] if self.error is not None else []
        if self.unmet is not None:
            failures.append(self.unmet)
        failures.extend(judged)
        if failures and self.note is not None:
            failures.append(self.note)
        return failures


def send_with_retries(
    send: Callable[[], ResponseView],
    plan: RetryPlan | None,
    *,
    names: Mapping[str, Any],
    stop: threading.Event,
) -> Tried:
    """Send a request once, or as often as `plan` says.

    Args:
        send: Sends the request once; raises `SendError` when no response
            came, and any other `RunnerError` when it could not be sent.
        plan: The request's retry plan; None sends exactly once.
        names: Vars and captures, for ``until``.
        stop: Set when the run stops; waits end at once then.

    Returns:
        The last send's response or error, and how the loop ended.
    """
    attempts = 0
    waited = 0.0
    while True:
        attempts += 1
        response: ResponseView | None = None
        error: SendError | None = None
        try:
            response = send()
        except SendError as failure:
            error = failure
        except RunnerError as failure:
            return Tried(None, failure, attempts)
        if plan is None:
            return Tried(response, error, attempts)

        why = plan.unsettled(response, names)
        if why is None:
            return Tried(response, error, attempts)
        if attempts > plan.times:
            return _ended(plan, response, error, attempts, why, None)

        wait = plan.wait_before_next(response, waited)
        if wait is None:
            note = (
                f"gave up after {_count(attempts)}: Retry-After used up the "
                f"{plan.wait_bound:g} s its retries may wait in all"
            )
            return _ended(plan, response, error, attempts, why, note)
        # Not the detail in brackets: an expression's error is no log's business.
        log.info(
            "%s; sending again in %.1f s (attempt %d of at most %d)",
            why.partition(" (")[0],
            wait,
            attempts + 1,
            plan.times + 1,
        )
        if stop.wait(wait):
            note = f"stopped retrying after {_count(attempts)}: the run is stopping"
            ended = _ended(plan, response, error, attempts, why, note)
            return dataclasses.replace(ended, stopped=True)
        waited += wait


def _ended(
    plan: RetryPlan,
    response: ResponseView | None,
    error: SendError | None,
    attempts: int,
    why: str,
    note: str | None,
) -> Tried:
    """How a loop ended that no send settled; `note` is None when out of tries."""
    unmet = None
    if plan.until is not None and response is not None:
        detail = why.removeprefix("until is false")
        unmet = (
            f"until: {plan.until.source} still false after {_count(attempts)}{detail}"
        )
    if note is None and error is not None:
        note = f"gave up after {_count(attempts)}"
    elif note is None and plan.until is None and response is not None:
        note = f"still {response.status} after {_count(attempts)}"
    return Tried(response, error, attempts, unmet, note)


def _count(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"
