"""Whole runs of ``runner run`` over real sockets on 127.0.0.1.

The token manager on its own is tested in test_tokens.py and
test_token_concurrency.py; the expectations in test_expectations.py. Here
the pieces meet: files on disk, the command line, the servers in
tests/oauth_servers.py and the demo API.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import main
from runner.demo.server import DemoServer
from tests.oauth_servers import FixtureServer, Reply

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _connection(folder: Path, server: FixtureServer | DemoServer) -> Path:
    return _write(
        folder,
        "connection.yaml",
        f"""\
        url: {server.api_url}
        token_url: {server.token_url}
        client_id: {server.client_id}
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        """,
    )


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoServer]:
    with DemoServer(token_lifetime=60) as server:
        monkeypatch.setenv(SECRET_ENV, server.client_secret)
        yield server


@pytest.fixture
def fixture_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as server:
        monkeypatch.setenv(SECRET_ENV, server.client_secret)
        yield server


CRUD_SUITE = """\
name: crud
connection: connection.yaml
vars: {customer: acme}
requests:
  - name: create
    method: POST
    url: invoices
    body: {customer: "{{ customer }}", amount: 10}
    expect:
      status: 201
      json: {customer: acme, amount: 10}
    capture: {invoice_id: response.json.id}
  - name: read
    url: /invoices/{{ invoice_id }}
    expect:
      status: 200
      that: ["response.json.id == invoice_id"]
"""


def test_run_suite_with_capture_passes_and_prints_a_line_per_request(
    demo: DemoServer, tmp_path: Path
) -> None:
    _connection(tmp_path, demo)
    suite = _write(tmp_path, "suite.yaml", CRUD_SUITE)

    status, out, err = _run(str(suite))

    assert status == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("PASS  crud > create  POST ")
    assert lines[0].endswith(" ms") and "/invoices  201  " in lines[0]
    assert lines[1].startswith("PASS  crud > read  GET ")
    assert "/invoices/1  200" in lines[1]
    assert lines[-1].startswith("1 suite, 2 requests: 2 passed, 0 failed; 1 token")
    _assert_no_secrets(out + err, demo.client_secret)


def test_failed_request_shows_reason_and_skips_requests_using_its_capture(
    demo: DemoServer, tmp_path: Path
) -> None:
    _connection(tmp_path, demo)
    suite = _write(
        tmp_path,
        "suite.yaml",
        CRUD_SUITE.replace("status: 201", "status: 200")
        + "  - name: health\n    url: health\n",
    )

    status, out, _ = _run(str(suite))

    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL  crud > create")
    assert lines[1].strip().startswith("status: expected 200, got 201")
    assert lines[2].startswith("SKIP  crud > read")
    assert "'invoice_id'" in lines[3] and "create did not pass" in lines[3]
    assert lines[4].startswith("PASS  crud > health")
    assert "1 passed, 1 failed, 1 skipped" in lines[-1]


def test_invalid_file_among_valid_ones_sends_nothing_and_exits_2(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    _connection(tmp_path, fixture_server)
    _write(tmp_path, "good.yaml", "connection: connection.yaml\nrequests: [{}]\n")
    _write(
        tmp_path,
        "bad.yaml",
        "connection: connection.yaml\nrequests:\n  - url: '{{ nowhere }}'\n",
    )

    status, out, err = _run(str(tmp_path))

    assert status == 2
    assert "bad.yaml:3:" in err and "nowhere" in err
    assert "nothing was sent" in err
    assert out == ""
    assert fixture_server.token_requests == 0
    assert fixture_server.api_requests == 0


def test_many_suites_at_once_share_one_token(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    _connection(tmp_path, fixture_server)
    for index in range(24):
        _write(
            tmp_path,
            f"suite{index:02}.yaml",
            "connection: connection.yaml\n"
            "requests: [{url: a}, {url: b}, {url: c, repeat: 3}]\n",
        )

    status, out, _ = _run("--concurrency", "8", str(tmp_path))

    assert status == 0, out
    assert fixture_server.token_requests == 1
    assert fixture_server.api_requests == 24 * 5
    assert "24 suites, 120 requests: 120 passed, 0 failed; 1 token fetched" in out
    _assert_no_secrets(out, fixture_server.client_secret, *fixture_server.issued)


def test_short_lived_token_is_renewed_without_a_failure(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    """A 1 s token over a 3.2 s run: renewed at half its life, never sent stale."""
    fixture_server.expires_in = 1
    _connection(tmp_path, fixture_server)
    suite = _write(
        tmp_path,
        "suite.yaml",
        "connection: connection.yaml\nrequests: [{url: a, repeat: 16, delay: 200}]\n",
    )

    status, out, _ = _run(str(suite))

    assert status == 0, out
    assert fixture_server.api_statuses[401] == 0
    # Renewed every 0.5 s (half the lifetime): 3.2 s of run takes 6 to 8.
    assert 6 <= fixture_server.token_requests <= 8
    _assert_no_secrets(out, fixture_server.client_secret, *fixture_server.issued)


def test_token_endpoint_refusal_fails_cleanly_with_the_providers_message(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    fixture_server.replies.append(
        Reply.json(
            401,
            {"error": "invalid_client", "error_description": "unknown client"},
        )
    )
    _connection(tmp_path, fixture_server)
    suite = _write(
        tmp_path,
        "suite.yaml",
        "connection: connection.yaml\nrequests: [{url: a}, {url: b}]\n",
    )

    status, out, err = _run(str(suite))

    assert status == 1
    assert "invalid_client" in out and "unknown client" in out
    assert fixture_server.token_requests == 1
    assert fixture_server.api_requests == 0
    assert "Traceback" not in out + err
    _assert_no_secrets(out + err, fixture_server.client_secret)


def test_bare_connection_file_named_on_the_command_line_runs_as_one_request(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    connection = _connection(tmp_path, fixture_server)

    status, out, _ = _run(str(connection))

    assert status == 0, out
    assert fixture_server.api_requests == 1
    assert "1 suite, 1 requests: 1 passed" in out


def test_token_goes_only_to_the_connections_origin(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    with FixtureServer() as elsewhere:
        _connection(tmp_path, fixture_server)
        suite = _write(
            tmp_path,
            "suite.yaml",
            f"""\
            connection: connection.yaml
            requests:
              - url: here
              - url: {elsewhere.api_url}/there
                expect: {{status: 401}}
            """,
        )

        status, out, _ = _run(str(suite))

        assert status == 0, out
        assert elsewhere.api_authorizations == [None]
        assert fixture_server.api_authorizations[0] == (
            f"Bearer {fixture_server.issued[0]}"
        )


def test_plain_http_token_url_off_loopback_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-sent-anywhere")
    _write(
        tmp_path,
        "connection.yaml",
        f"""\
        url: http://127.0.0.1:9/api
        token_url: http://auth.example.com/token
        client_id: someone
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        """,
    )
    suite = _write(tmp_path, "s.yaml", "connection: connection.yaml\nrequests: [{}]\n")

    status, out, err = _run(str(suite))

    assert status == 2
    assert "connection.yaml" in err and "token_url" in err
    assert out == ""


def test_demo_command_runs_the_examples_and_passes() -> None:
    out, err = io.StringIO(), io.StringIO()

    status = main(["demo", "--no-color"], stdout=out, stderr=err)

    text = out.getvalue()
    assert status == 0, text + err.getvalue()
    assert "0 failed" in text.splitlines()[-1]
    # The demo's tokens live 2 s and the billing suite outlives one.
    assert "3 tokens fetched" in text.splitlines()[-1]


def test_interrupt_stops_the_run_with_status_130(
    fixture_server: FixtureServer, tmp_path: Path
) -> None:
    _connection(tmp_path, fixture_server)
    suite = _write(
        tmp_path,
        "suite.yaml",
        "connection: connection.yaml\nrequests: [{url: a}, {url: b, delay: 20000}]\n",
    )
    env = {**os.environ, SECRET_ENV: fixture_server.client_secret}
    command = [sys.executable, "-m", "runner", "run", "--no-color", str(suite)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()  # the first request has passed
            assert first.startswith("PASS")
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            rest, errors = process.communicate(timeout=10)
        finally:
            process.kill()
        status = process.returncode

    assert status == 130
    assert time.monotonic() - started < 5
    assert fixture_server.api_requests == 1
    assert "Traceback" not in rest + errors
    # b, in its delay when the signal came, is reported before the summary.
    skip, reason, summary = rest.splitlines()
    assert skip == "SKIP  suite > GET b  GET b" and reason == "       run interrupted"
    assert summary.startswith("1 suite, 2 requests: 1 passed, 0 failed, 1 skipped")
