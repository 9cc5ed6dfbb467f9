"""Retries and polling (``retry``), unit by unit and in whole runs.

The loop on its own (`runner.retrying.send_with_retries`) is tested with a
scripted ``send`` and a stop event that records its waits; whole runs of
``runner run`` go to the loopback server of tests/scripted_server.py.
"""

from __future__ import annotations

import email.utils
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from runner.cli import main
from runner.connections import Retry
from runner.errors import SendError, TokenError
from runner.expectations import ResponseView
from runner.retry_after import parse_retry_after
from runner.retrying import (
    MAX_RETRY_AFTER_SECONDS,
    RetryPlan,
    Tried,
    send_with_retries,
)
from runner.secrets import Redactor
from runner.templates import Templates
from tests.oauth_servers import Reply, free_port, wait_until
from tests.scripted_server import ScriptedServer

SECRET_ENV = "RUNNER_RETRY_TEST_TOKEN"
SECRET = "retry-secret-4c9e1f7a"


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded."""

    def __init__(self, *, stop_at: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self._stop_at = stop_at

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(0.0 if timeout is None else timeout)
        if self._stop_at is not None and len(self.waits) >= self._stop_at:
            self.set()
        return self.is_set()


def _response(
    status: int = 200, body: str = "{}", headers: dict[str, str] | None = None
) -> ResponseView:
    return ResponseView(status=status, headers=headers or {}, text=body, elapsed_ms=1.0)


def _sender(
    answers: Sequence[ResponseView | Exception],
) -> tuple[Callable[[], ResponseView], list[int]]:
    """A ``send`` that answers in order (the last one repeated), and its count."""
    calls = [0]

    def send() -> ResponseView:
        answer = answers[min(calls[0], len(answers) - 1)]
        calls[0] += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    return send, calls


def _plan(until: str | None = None, **fields: object) -> RetryPlan:
    expression = None
    if until is not None:
        expression = Templates({}, Redactor()).compile_expression(until)
    return RetryPlan.build(Retry.model_validate(fields), expression)


# ------------------------------------------------------------ the loop alone


def test_loop_without_a_plan_sends_once_whatever_the_status() -> None:
    send, calls = _sender([_response(503)])

    tried = send_with_retries(send, None, names={}, stop=RecordingStop())

    assert calls[0] == 1
    assert tried.attempts == 1
    assert tried.reasons() == []


def test_loop_status_in_on_is_sent_again_until_one_is_not() -> None:
    send, calls = _sender([_response(503), _response(502), _response(200)])
    stop = RecordingStop()

    tried = send_with_retries(send, _plan(delay=250), names={}, stop=stop)

    assert calls[0] == 3
    assert tried.attempts == 3
    assert tried.response is not None and tried.response.status == 200
    assert stop.waits == [0.25, 0.25]


def test_loop_status_not_in_on_is_not_sent_again() -> None:
    send, calls = _sender([_response(500)])

    tried = send_with_retries(send, _plan(), names={}, stop=RecordingStop())

    assert calls[0] == 1
    assert tried.note is None


def test_loop_statuses_exhausted_say_still_status_after_attempts() -> None:
    send, calls = _sender([_response(429)])

    tried = send_with_retries(
        send, _plan(times=2, delay=0), names={}, stop=RecordingStop()
    )

    assert calls[0] == 3
    assert tried.reasons(["status: expected a 2xx status, got 429"]) == [
        "status: expected a 2xx status, got 429",
        "still 429 after 3 attempts",
    ]


def test_loop_exhausted_statuses_that_expect_accepts_give_no_reason() -> None:
    """The last response is judged by `expect`: accepted, nothing to say."""
    send, _ = _sender([_response(503)])

    tried = send_with_retries(
        send, _plan(times=1, delay=0), names={}, stop=RecordingStop()
    )

    assert tried.attempts == 2
    assert tried.reasons([]) == []


def test_loop_retry_after_seconds_replaces_the_delay() -> None:
    busy = _response(429, headers={"Retry-After": "7"})
    send, _ = _sender([busy, _response(200)])
    stop = RecordingStop()

    send_with_retries(send, _plan(delay=10), names={}, stop=stop)

    assert stop.waits == [7.0]


def test_loop_retry_after_is_capped() -> None:
    busy = _response(503, headers={"Retry-After": "86400"})
    send, _ = _sender([busy, _response(200)])
    stop = RecordingStop()

    send_with_retries(send, _plan(delay=10), names={}, stop=stop)

    assert stop.waits == [MAX_RETRY_AFTER_SECONDS]


def test_loop_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    send, _ = _sender([_response(503, headers={"Retry-After": when}), _response()])
    stop = RecordingStop()

    send_with_retries(send, _plan(delay=10), names={}, stop=stop)

    assert len(stop.waits) == 1
    assert 3.0 <= stop.waits[0] <= 5.0


def test_loop_retry_after_waits_stop_at_the_loops_bound() -> None:
    """Five 60 s waits asked for, 60 s allowed in all (3 x 10 ms < 60 s)."""
    busy = _response(503, headers={"Retry-After": "60"})
    send, calls = _sender([busy])
    stop = RecordingStop()

    tried = send_with_retries(send, _plan(times=5, delay=10), names={}, stop=stop)

    assert stop.waits == [60.0]
    assert calls[0] == 2
    assert tried.note is not None
    assert tried.note == (
        "gave up after 2 attempts: Retry-After used up the 60 s its retries "
        "may wait in all"
    )


def test_loop_delays_after_a_retry_after_stay_inside_the_bound() -> None:
    """A 50 s Retry-After, then 30 s delays: 60 s in all, not 50 + 30 + 30."""
    busy = _response(503, headers={"Retry-After": "50"})
    send, calls = _sender([busy, _response(503)])
    stop = RecordingStop()

    tried = send_with_retries(send, _plan(times=2, delay=30_000), names={}, stop=stop)

    assert stop.waits == [50.0, 10.0]
    assert calls[0] == 3
    assert tried.note == "still 503 after 3 attempts"


def test_loop_delays_alone_are_all_waited() -> None:
    send, calls = _sender([_response(503)])
    stop = RecordingStop()

    send_with_retries(send, _plan(times=10, delay=100), names={}, stop=stop)

    assert calls[0] == 11
    assert stop.waits == pytest.approx([0.1] * 10)


def test_loop_network_errors_are_sent_again_then_reported() -> None:
    send, calls = _sender([SendError("could not send: ConnectError: refused")])

    tried = send_with_retries(
        send, _plan(times=2, delay=0), names={}, stop=RecordingStop()
    )

    assert calls[0] == 3
    assert tried.response is None
    assert tried.reasons() == [
        "could not send: ConnectError: refused",
        "gave up after 3 attempts",
    ]


def test_loop_token_error_ends_at_once() -> None:
    """The token manager has retried already: no second round of retries."""
    send, calls = _sender([TokenError("the token endpoint answered 503")])

    tried = send_with_retries(send, _plan(times=5), names={}, stop=RecordingStop())

    assert calls[0] == 1
    assert tried.reasons() == ["the token endpoint answered 503"]


def test_loop_stop_event_cuts_the_wait_short_and_says_so() -> None:
    send, calls = _sender([_response(503)])
    stop = RecordingStop(stop_at=1)

    tried = send_with_retries(send, _plan(times=5), names={}, stop=stop)

    assert calls[0] == 1
    assert tried.note == "stopped retrying after 1 attempt: the run is stopping"


def test_loop_wait_returns_as_soon_as_the_run_stops() -> None:
    """A real event: a 30 s delay ends when another thread sets it."""
    send, calls = _sender([_response(503)])
    stop = threading.Event()
    timer = threading.Timer(0.1, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        tried = send_with_retries(send, _plan(delay=30_000), names={}, stop=stop)
    finally:
        timer.cancel()

    assert time.monotonic() - started < 5
    assert calls[0] == 1
    assert tried.note is not None and "the run is stopping" in tried.note


def test_loop_until_polls_until_true_ignoring_statuses() -> None:
    pending = _response(202, '{"state": "pending"}')
    send, calls = _sender([pending, pending, _response(200, '{"state": "ready"}')])
    stop = RecordingStop()
    plan = _plan("response.json.state == 'ready'", times=5, delay=100)

    tried = send_with_retries(send, plan, names={}, stop=stop)

    assert calls[0] == 3
    assert tried.reasons() == []
    assert stop.waits == [0.1, 0.1]


def test_loop_until_never_true_fails_after_times() -> None:
    send, calls = _sender([_response(200, '{"state": "pending"}')])
    plan = _plan("response.json.state == 'ready'", times=4, delay=0)

    tried = send_with_retries(send, plan, names={}, stop=RecordingStop())

    assert calls[0] == 5
    assert tried.reasons() == [
        "until: response.json.state == 'ready' still false after 5 attempts"
    ]


def test_loop_until_that_fails_to_evaluate_counts_as_false() -> None:
    """Polling reads members that appear only once the resource is ready."""
    send, calls = _sender([_response(200, "{}"), _response(200, '{"job": {"n": 1}}')])
    plan = _plan("response.json.job.n == 1", times=3, delay=0)

    tried = send_with_retries(send, plan, names={}, stop=RecordingStop())

    assert calls[0] == 2
    assert tried.reasons() == []


def test_loop_until_reads_vars_and_captures() -> None:
    send, _ = _sender([_response(200, '{"id": 7}')])
    plan = _plan("response.json.id == wanted", times=1, delay=0)

    tried = send_with_retries(send, plan, names={"wanted": 7}, stop=RecordingStop())

    assert tried.attempts == 1
    assert tried.reasons() == []


def test_tried_reasons_put_the_note_last_and_only_on_failure() -> None:
    tried = Tried(_response(503), attempts=2, note="still 503 after 2 attempts")

    assert tried.reasons() == []
    assert tried.reasons(["status: x"]) == ["status: x", "still 503 after 2 attempts"]


def test_parse_retry_after_reads_seconds_dates_and_refuses_the_rest() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    past = email.utils.formatdate(0, usegmt=True)
    assert parse_retry_after(past) == 0.0


# ---------------------------------------------------------------- whole runs


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connections send it in a header: it must never be written."""
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def _files(
    folder: Path, url: str, requests: str, *, connection_extra: str = ""
) -> Path:
    connection = f"""\
        url: {url}
        headers: {{Authorization: "Bearer {{{{ env.{SECRET_ENV} }}}}"}}
        """
    (folder / "connection.yaml").write_text(
        textwrap.dedent(connection) + textwrap.dedent(connection_extra),
        encoding="utf-8",
    )
    suite = folder / "suite.yaml"
    text = "name: retries\nconnection: connection.yaml\nrequests:\n"
    suite.write_text(text + textwrap.dedent(requests), encoding="utf-8")
    return suite


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _check(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["check", *args], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_run_429_with_retry_after_then_200_passes_in_two_attempts(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runner")
    server.script("/busy", Reply.json(429, {}, {"Retry-After": "1"}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - name: busy
            url: busy
            retry: {times: 2, delay: 10}
        """,
    )

    started = time.monotonic()
    status, out, err = _run(str(suite))
    elapsed = time.monotonic() - started

    assert status == 0, out + err
    assert server.count("/busy") == 2
    assert elapsed >= 1.0
    assert out.splitlines()[0].endswith(" ms  2 attempts")
    assert SECRET not in out + err + caplog.text


def test_run_on_statuses_exhausted_fails_with_reason_and_attempts(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runner")
    server.default("/down", Reply.json(503, {"error": "maintenance"}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - name: down
            url: down
            retry: {times: 3, delay: 5, on: [503]}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 1, out + err
    assert server.count("/down") == 4
    lines = out.splitlines()
    assert lines[0].startswith("FAIL  retries > down  GET ")
    assert lines[0].endswith("4 attempts")
    assert lines[1].strip().startswith("status: expected a 2xx status, got 503")
    assert lines[2].strip() == "still 503 after 4 attempts"
    assert SECRET not in out + err + caplog.text


def test_run_network_error_is_retried_then_reported(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    suite = _files(
        tmp_path,
        closed,
        """\
          - name: nobody home
            retry: {times: 2, delay: 5}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 1, out + err
    lines = out.splitlines()
    assert lines[0].startswith("ERR   retries > nobody home  GET ")
    assert lines[0].endswith("3 attempts")
    assert lines[1].strip().startswith("could not send: ConnectError")
    assert lines[2].strip() == "gave up after 3 attempts"
    assert "1 could not be sent" in lines[-1]


def test_run_until_polls_a_resource_until_it_is_ready(
    server: ScriptedServer, tmp_path: Path
) -> None:
    pending = Reply.json(200, {"state": "pending"})
    server.script("/jobs/1", pending, pending)
    server.default("/jobs/1", Reply.json(200, {"id": 1, "state": "ready"}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - name: wait for the job
            url: jobs/1
            retry: {times: 5, delay: 20, until: "response.json.state == 'ready'"}
            capture: {job: response.json.id}
          - name: read it
            url: jobs/{{ job }}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 0, out + err
    assert server.count("/jobs/1") == 4  # three polls, then "read it"
    lines = out.splitlines()
    assert lines[0].endswith("3 attempts")
    assert "attempts" not in lines[1]


def test_run_until_never_true_fails_after_times(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.default("/jobs/2", Reply.json(200, {"state": "pending"}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - name: never ready
            url: jobs/2
            retry: {times: 4, delay: 5, until: "response.json.state == 'ready'"}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 1, out + err
    assert server.count("/jobs/2") == 5
    reasons = [line.strip() for line in out.splitlines()[1:-1]]
    assert reasons == [
        "until: response.json.state == 'ready' still false after 5 attempts"
    ]


def test_run_without_retry_sends_each_request_once(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.default("/down", Reply.json(503, {}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - url: down
          - url: down
            repeat: 2
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 1, out + err
    assert server.count("/down") == 3
    assert "attempts" not in out


def test_run_connection_retry_applies_and_a_requests_own_replaces_it(
    server: ScriptedServer, tmp_path: Path
) -> None:
    for path in ("/a", "/b", "/c"):
        server.default(path, Reply.json(503, {}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - url: a
          - url: b
            retry: {times: 1, delay: 0}
          - url: c
            retry: null
        """,
        connection_extra="retry: {times: 2, delay: 0}\n",
    )

    status, out, err = _run(str(suite))

    assert status == 1, out + err
    assert server.count("/a") == 3  # the connection's: 1 + 2
    assert server.count("/b") == 2  # its own: 1 + 1
    assert server.count("/c") == 1  # turned off


def test_run_each_repeat_has_its_own_retry_loop(
    server: ScriptedServer, tmp_path: Path
) -> None:
    busy = Reply.json(503, {})
    ok = Reply.json(200, {})
    server.script("/flaky", busy, ok, busy, ok)
    server.default("/flaky", Reply.json(500, {}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - url: flaky
            repeat: 2
            retry: {times: 1, delay: 0}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 0, out + err
    assert server.count("/flaky") == 4
    assert [line.endswith("2 attempts") for line in out.splitlines()[:2]] == [
        True,
        True,
    ]


def test_run_bare_connection_file_uses_its_retry(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.script("/", Reply.json(503, {}))
    _files(tmp_path, server.url, "  - url: x\n", connection_extra="retry: {delay: 0}\n")

    status, out, err = _run(str(tmp_path / "connection.yaml"))

    assert status == 0, out + err
    assert server.count("/") == 2


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        (
            '{until: "response.json.state =="}',
            "suite.yaml:7:18: expression syntax error",
        ),
        ("{tims: 3}", "unknown field 'tims' (did you mean 'times'?)"),
        ("{times: 1000}", "must be at most 100, got 1000"),
        ("{times: 0}", "must be at least 1, got 0"),
        ("{delay: -1}", "must be at least 0, got -1"),
        ("{on: [999]}", "must be at most 599, got 999"),
        ('{until: "response.json.id == nobody"}', "undefined variable 'nobody'"),
        (
            '{on: [503], until: "response.status == 200"}',
            "`on` does not apply with `until`",
        ),
    ],
)
def test_run_bad_retry_is_a_located_input_error_and_sends_nothing(
    server: ScriptedServer, tmp_path: Path, retry: str, expected: str
) -> None:
    suite = _files(
        tmp_path,
        server.url,
        f"""\
          - name: first
            url: fine
          - url: polled
            retry: {retry}
        """,
    )

    status, out, err = _run(str(suite))

    assert status == 2, out + err
    assert expected in err
    assert f"{suite}:" in err
    assert server.count("/fine") == 0
    assert server.count("/polled") == 0


def test_check_reports_a_retry_syntax_error_with_its_position(
    server: ScriptedServer, tmp_path: Path
) -> None:
    suite = _files(
        tmp_path,
        server.url,
        """\
          - url: polled
            retry:
              until: "response.json.state =="
        """,
    )

    status, out, err = _check(str(suite))

    assert status == 2
    assert f"{suite}:6:" in out + err
    assert "requests[0].retry.until" in out + err


def test_connection_retry_refuses_until(server: ScriptedServer, tmp_path: Path) -> None:
    """Polling is about one resource: `until` belongs on a request."""
    suite = _files(
        tmp_path,
        server.url,
        "  - url: x\n",
        connection_extra='retry: {until: "response.status == 200"}\n',
    )

    status, out, err = _run(str(suite))

    assert status == 2, out + err
    assert "unknown field 'until'" in err
    assert server.count("/x") == 0


def test_run_interrupted_during_a_retry_wait_stops_at_once(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.default("/down", Reply.json(503, {}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - url: down
            retry: {times: 3, delay: 20000}
        """,
    )
    command = [sys.executable, "-m", "runner", "run", "--no-color", str(suite)]
    env = {**os.environ, SECRET_ENV: SECRET}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert wait_until(lambda: server.count("/down") == 1, timeout=10)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=10)
        finally:
            process.kill()

    assert process.returncode == 130, out + err
    assert time.monotonic() - started < 5
    assert server.count("/down") == 1
    assert "Traceback" not in out + err


def test_run_verbose_shows_every_attempt(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """Each send of a retried request has its own block in ``-v``."""
    server.script("/flaky", Reply.json(503, {}), Reply.json(503, {}))
    server.default("/flaky", Reply.json(200, {"ok": True}))
    suite = _files(
        tmp_path,
        server.url,
        """\
          - name: flaky
            url: flaky
            retry: {times: 3, delay: 5, on: [503]}
        """,
    )

    status, out, err = _run("-v", str(suite))

    assert status == 0, out + err
    assert server.count("/flaky") == 3
    assert out.count("< 503") == 2, out
    assert out.count("< 200") == 1, out
    assert SECRET not in out + err


def test_run_fail_fast_during_a_retry_wait_skips_the_request_not_fails_it(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """The other suite's failure stops the wait; the 503 is not judged."""
    server.default("/busy", Reply.json(503, {}))
    server.script("/broken", Reply(500, b"", {}, delay=0.3))
    busy = _files(
        tmp_path,
        server.url,
        """\
          - name: busy
            url: busy
            retry: {times: 5, delay: 5000, on: [503]}
        """,
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "name: broken\nconnection: connection.yaml\nrequests:\n  - url: broken\n",
        encoding="utf-8",
    )

    started = time.monotonic()
    status, out, err = _run("--fail-fast", "--concurrency", "2", str(busy), str(broken))

    assert status == 1, out + err
    assert time.monotonic() - started < 4
    assert server.count("/busy") == 1
    busy_line = next(line for line in out.splitlines() if "retries > busy" in line)
    assert busy_line.startswith("SKIP"), out
    assert (
        "retries cut short: --fail-fast after a failure in broken > GET broken; "
        "1 attempt sent"
    ) in out
    assert out.count("FAIL") == 1, out
    assert SECRET not in out + err
