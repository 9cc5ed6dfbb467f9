"""One request of a suite, sent and judged: what ``runner run`` and the pytest
plugin share.

`RequestSender` renders a request's templates with the suite's vars and the
captures so far, sends it (retries and polling included), judges the
response and evaluates its captures, once per ``repeat``. `SuiteProgress`
keeps a suite's captures as its requests run in order, and explains why a
request is skipped when a name it uses was not captured.

``runner run`` drives both from `runner.running`, a suite per worker thread;
the pytest plugin (`runner.pytest_items`) drives them one test item at a
time. Neither writes anything: outcomes go to the caller's callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import TemplateError, TokenError
from runner.expectations import ResponseView, evaluate_captures
from runner.loading import LoadedRequest, LoadedSuite
from runner.output import Outcome, State
from runner.retrying import send_with_retries
from runner.sending import ConnectionSession, join_url
from runner.stopping import RunStop
from runner.templates import Templates

__all__ = ["RequestSender", "SuiteProgress", "request_label", "skipped_outcomes"]


def request_label(request: LoadedRequest) -> str:
    """How a request is named in the output: its ``name``, else method and URL."""
    model = request.model
    return model.name or f"{model.method} {model.url or '/'}"


def skipped_outcomes(
    suite: LoadedSuite, request: LoadedRequest, reason: str, sends: int | None = None
) -> Iterator[Outcome]:
    """`sends` skipped outcomes of `request` (default: one per repeat)."""
    model = request.model
    for _ in range(model.repeat if sends is None else sends):
        yield Outcome(
            suite=suite.name,
            request=request_label(request),
            method=model.method,
            url=model.url,
            state=State.SKIPPED,
            reasons=(reason,),
            location=request.location,
        )


@dataclass(frozen=True, slots=True)
class _Capturer:
    """The request meant to capture a name, and whether it was selected."""

    label: str
    picked: bool


class SuiteProgress:
    """A suite's captures so far, and who was meant to capture each name.

    Args:
        not_selected: How a request left out of the run is described in a
            skip reason (``"not selected by --tag"``).
    """

    def __init__(self, not_selected: str) -> None:
        self.captures: dict[str, Any] = {}
        self._not_selected = not_selected
        self._capturer: dict[str, _Capturer] = {}

    def left_out(self, request: LoadedRequest) -> None:
        """`request` is not sent in this run: only its captures are missed."""
        label = request_label(request)
        for name in request.captures:
            self._capturer[name] = _Capturer(label, picked=False)

    def sending(self, request: LoadedRequest) -> None:
        """`request` is about to be sent: it is who captures its names."""
        label = request_label(request)
        for name in request.captures:
            self._capturer[name] = _Capturer(label, picked=True)

    def skip_reason(self, request: LoadedRequest) -> str | None:
        """Why `request` cannot be sent (a name it uses is missing), or None."""
        missing = sorted(request.uses - self.captures.keys())
        if not missing:
            return None

        names = ", ".join(repr(name) for name in missing)
        makers = [self._capturer[name] for name in missing if name in self._capturer]
        failed = sorted({maker.label for maker in makers if maker.picked})
        left_out = sorted({maker.label for maker in makers if not maker.picked})
        if failed:
            return f"uses {names}, not captured: {', '.join(failed)} did not pass"
        if left_out:
            return (
                f"uses {names}, not captured: {', '.join(left_out)} "
                f"{self._not_selected}"
            )
        return f"uses {names}, which no earlier request captured"


class RequestSender:
    """Sends one request of a suite and judges each of its responses.

    Args:
        sessions: The open `ConnectionSession` of every connection, by
            `runner.loading.LoadedConnection.key`.
        templates: The run's template engine.
        stop: The run's stop event: delays and retry waits end when it is
            set, and no further repeat is sent.
    """

    def __init__(
        self,
        sessions: Mapping[str, ConnectionSession],
        templates: Templates,
        stop: RunStop,
    ) -> None:
        self._sessions = sessions
        self._templates = templates
        self._stop = stop

    def send(
        self,
        suite: LoadedSuite,
        request: LoadedRequest,
        captures: dict[str, Any],
        report: Callable[[Outcome], None],
    ) -> None:
        """Send `request` ``repeat`` times, handing each outcome to `report`.

        `captures` is updated from each passing send (so the last one wins).
        When the run stops, the sends left are reported skipped.
        """
        model = request.model
        for sent in range(model.repeat):
            if self._stop.is_set() or (
                model.delay and self._stop.wait(model.delay / 1000)
            ):
                left = model.repeat - sent
                for skipped in skipped_outcomes(
                    suite, request, self._stop.reason, left
                ):
                    report(skipped)
                return
            outcome, captured = self.send_once(suite, request, captures)
            report(outcome)
            captures.update(captured)

    def send_once(
        self,
        suite: LoadedSuite,
        request: LoadedRequest,
        captures: Mapping[str, Any],
    ) -> tuple[Outcome, dict[str, Any]]:
        """Render, send and judge `request` once; its outcome and its captures."""
        model = request.model
        session = self._sessions[request.connection.key]
        names = {**suite.variables, **captures}
        url = join_url(session.base_url, model.url)

        def outcome(state: State, *reasons: str, **extra: Any) -> Outcome:
            return Outcome(
                suite=suite.name,
                request=request_label(request),
                method=model.method,
                url=url,
                state=state,
                reasons=reasons,
                location=request.location,
                **extra,
            )

        try:
            url = join_url(session.base_url, self._templates.render(model.url, names))
            headers = self._templates.render(model.headers, names)
            params = self._templates.render(model.params, names)
            body = self._templates.render(model.body, names)
        except TemplateError as error:
            return outcome(State.ERROR, f"could not render: {error.message}"), {}

        def send() -> ResponseView:
            sent = session.send(
                method=model.method,
                url=url,
                headers=headers,
                params=params,
                body=body,
                timeout=model.timeout,
                follow_redirects=model.follow_redirects,
            )
            return ResponseView(
                status=sent.status,
                headers=sent.headers,
                text=sent.text,
                elapsed_ms=sent.elapsed_ms,
            )

        began = time.perf_counter()
        tried = send_with_retries(send, request.retry, names=names, stop=self._stop)
        retried: dict[str, Any] = {"attempts": tried.attempts}
        if tried.attempts > 1:
            retried["spent_ms"] = (time.perf_counter() - began) * 1000
        if tried.stopped:
            # Cut short by --fail-fast or an interrupt, not judged: a failure
            # here would be one the request never had.
            stopping = self._stop.reason.removeprefix("not sent: ")
            plural = "s" if tried.attempts != 1 else ""
            cut = (
                f"retries cut short: {stopping}; {tried.attempts} attempt{plural} sent"
            )
            return outcome(State.SKIPPED, cut, **retried), {}
        response = tried.response
        if isinstance(tried.error, TokenError) and self._stop.is_set():
            # The wait for a token ended because the run stops: not sent.
            return outcome(State.SKIPPED, self._stop.reason, **retried), {}
        if response is None:
            why = tried.reasons()
            return outcome(State.ERROR, *why, **retried), {}

        timing = {
            "status": response.status,
            "elapsed_ms": response.elapsed_ms,
            **retried,
        }
        reasons = tried.reasons(request.expect.judge(response, names))
        if reasons:
            return outcome(State.FAILED, *reasons, **timing), {}
        try:
            captured = evaluate_captures(request.captures, response, names)
        except TemplateError as error:
            # The message names the capture: "capture 'id' (response.json.id): ..."
            return outcome(State.FAILED, error.message, **timing), {}
        return outcome(State.PASSED, **timing), captured
