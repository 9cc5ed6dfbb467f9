"""No secret in anything a run writes: every sink, every verbosity, every outcome.

Whole runs through `runner.cli.main` against real servers on 127.0.0.1: the
token endpoint of `tests.oauth_servers.FixtureServer` and an echo API that
sends back everything it received (path, query, headers, body) in its
body and in its headers. The client secret, each issued token and an
``env`` value are placed where they could leak (headers, query, body, URL
path, cookies, the token endpoint's error text), and every byte written is
searched for each of them in their plain and encoded forms.

Sinks searched: standard output and error of `main`, the log records of
``runner`` and ``httpx``, the process's own streams, and every file under
the ``outputs`` folder. A new sink that writes a file (``--junit``,
``--report``) is covered by pointing it into that folder: see
`test_every_outcome_and_option_together_leak_nothing`.

The pieces are tested on their own in test_secrets.py (the redactor),
test_trace.py (verbose blocks) and test_dry_run.py (curl commands).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from runner.cli import main
from tests.oauth_servers import FixtureServer, Reply, free_port

HOST = "127.0.0.1"
SECRET_ENV = "RUNNER_MASK_CLIENT_SECRET"
KEY_ENV = "RUNNER_MASK_API_KEY"
# Characters that each encoding writes differently: "/" "+" " " "&" "=" '"'.
API_KEY = 'key-Vb7/+ &="q'


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EchoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: the test reads the runner's output only

    def do_GET(self) -> None:
        self._echo()

    def do_POST(self) -> None:
        self._echo()

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests += 1
        document = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": body.decode("utf-8", "replace"),
        }
        payload = json.dumps(document).encode()
        status = 401 if self.path.startswith("/api/unauthorized") else 200

        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", f"session={quote(API_KEY)}")
        # Echoed in headers the runner has no reason to treat as secret.
        self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
        self.send_header("X-Echo-Key", self.headers.get("X-Api-Key", ""))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True


class _EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), _EchoHandler)
        self.lock = threading.Lock()
        self.requests = 0


class EchoServer:
    """An API that answers every request with the request, as JSON.

    Paths under ``/api/unauthorized`` are answered 401 (with the echo).
    """

    def __init__(self) -> None:
        self._server = _EchoHTTPServer()
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    @property
    def requests(self) -> int:
        return self._server.requests

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Written:
    """Every byte a run wrote, by sink."""

    status: int
    sinks: dict[str, bytes] = field(default_factory=dict)

    def text(self, sink: str) -> str:
        return self.sinks[sink].decode("utf-8", "replace")


@dataclass
class Setup:
    """The servers of a test, its files and the secrets they must hide."""

    folder: Path
    outputs: Path
    tokens: FixtureServer
    api: EchoServer
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> Written:
        """`runner run` with `args`; collects every sink it wrote to."""
        out, err = io.StringIO(), io.StringIO()
        status = main(["run", "--no-color", *args], stdout=out, stderr=err)
        process_out, process_err = self.capsys.readouterr()
        written = Written(status)
        written.sinks["stdout"] = out.getvalue().encode()
        written.sinks["stderr"] = err.getvalue().encode()
        written.sinks["logs"] = self.caplog.text.encode()
        written.sinks["process streams"] = (process_out + process_err).encode()
        for path in sorted(self.outputs.rglob("*")):
            if path.is_file():
                written.sinks[str(path.relative_to(self.outputs))] = path.read_bytes()
        return written

    def secrets(self) -> dict[str, str]:
        """Each secret by a name for the failure message: never its value."""
        found = {"client secret": self.tokens.client_secret, "env value": API_KEY}
        for number, token in enumerate(self.tokens.issued, 1):
            found[f"token {number}"] = token
        return found

    def assert_nothing_leaked(self, written: Written) -> None:
        """Fail naming the sink and the form, if any form of a secret shows."""
        leaks = []
        for name, value in self.secrets().items():
            for form_name, form in _forms(value, self.tokens.client_id).items():
                for sink, content in written.sinks.items():
                    if form.encode() in content:
                        leaks.append(f"{name} ({form_name}) in {sink}")
        assert not leaks, leaks

    def suite(self, text: str, connection_url: str | None = None) -> Path:
        """A suite file over a connection to the echo API (or `connection_url`)."""
        url = connection_url or f"{self.api.url}/api"
        _write(
            self.folder / "connection.yaml",
            f"""\
            url: {url}
            token_url: {self.tokens.token_url}
            client_id: {self.tokens.client_id}
            client_secret: "{{{{ env.{SECRET_ENV} }}}}"
            headers:
              X-Connection-Key: "{{{{ env.{KEY_ENV} }}}}"
            """,
        )
        return _write(self.folder / "suite.yaml", text)


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _forms(value: str, client_id: str) -> dict[str, str]:
    """The forms in which `value` may travel or be written."""
    forms = {
        "plain": value,
        "percent-encoded": quote(value, safe=""),
        "path-encoded": quote(value, safe="/+&="),
        "form-urlencoded": quote_plus(value),
        "JSON string": json.dumps(value)[1:-1],
        "XML/HTML escaped": html.escape(value),
        "base64": base64.b64encode(value.encode()).decode(),
        "unicode escaped": value.encode("unicode_escape").decode(),
    }
    for label, (user, password) in {
        "Basic credential": (client_id, value),
        "Basic credential, form-encoded": (quote_plus(client_id), quote_plus(value)),
    }.items():
        forms[label] = base64.b64encode(f"{user}:{password}".encode()).decode()
    return forms


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Setup]:
    for name in ("runner", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    with FixtureServer() as tokens, EchoServer() as api:
        monkeypatch.setenv(SECRET_ENV, tokens.client_secret)
        monkeypatch.setenv(KEY_ENV, API_KEY)
        yield Setup(tmp_path, outputs, tokens, api, caplog, capsys)


def _request(name: str, url: str, expect: str = "{status: 200}") -> str:
    """A request that carries the env value in each place a value can go."""
    key = f"{{{{ env.{KEY_ENV} }}}}"
    return f"""\
      - name: {name}
        method: POST
        url: "{url}/{key}"
        headers: {{X-Api-Key: "{key}", Cookie: "c={key}"}}
        params: {{key: "{key}"}}
        body: {{key: "{key}", note: plain}}
        expect: {expect}
"""


FAILING_EXPECT = """
          status: 201
          json: {body: nope}
          headers: {X-Echo-Key: nope, X-Echo-Authorization: nope}
          body_contains: absent-text
          that: ["response.json.headers['X-Api-Key'] == 'nope'", "response.text == 'x'"]
"""


def _suite(*requests: str) -> str:
    return "name: leaks\nconnection: connection.yaml\nrequests:\n" + "".join(requests)


def test_passing_run_leaks_nothing(setup: Setup) -> None:
    suite = setup.suite(_suite(_request("echo", "echo")))

    written = setup.run(str(suite))

    assert written.status == 0, written.text("stdout") + written.text("stderr")
    assert "PASS  leaks > echo" in written.text("stdout")
    assert setup.api.requests == 1
    setup.assert_nothing_leaked(written)


def test_failing_run_whose_reasons_quote_the_response_leaks_nothing(
    setup: Setup,
) -> None:
    suite = setup.suite(_suite(_request("echo", "echo", FAILING_EXPECT)))

    written = setup.run(str(suite))

    assert written.status == 1
    stdout = written.text("stdout")
    assert "FAIL  leaks > echo" in stdout
    assert "***" in stdout
    setup.assert_nothing_leaked(written)


def test_token_refusal_that_echoes_the_secret_leaks_nothing(setup: Setup) -> None:
    description = f"client {setup.tokens.client_secret} with key {API_KEY} refused"
    setup.tokens.replies.append(
        Reply.json(401, {"error": "invalid_client", "error_description": description})
    )
    suite = setup.suite(_suite(_request("echo", "echo")))

    written = setup.run("-vv", str(suite))

    assert written.status == 1
    assert "invalid_client" in written.text("stdout")
    assert setup.api.requests == 0
    setup.assert_nothing_leaked(written)


def test_network_error_with_the_secret_in_the_url_leaks_nothing(setup: Setup) -> None:
    unreachable = f"http://{HOST}:{free_port()}/api"
    suite = setup.suite(_suite(_request("echo", "echo")), connection_url=unreachable)

    written = setup.run("-vv", str(suite))

    assert written.status == 1
    stdout = written.text("stdout")
    assert "ERR   leaks > echo" in stdout
    assert "< no response: could not send: ConnectError" in stdout
    assert setup.tokens.token_requests == 1
    setup.assert_nothing_leaked(written)


def test_verbose_run_with_a_401_resend_leaks_nothing(setup: Setup) -> None:
    suite = setup.suite(
        _suite(
            _request("echo", "echo"),
            _request("refused", "unauthorized", "{status: 200}"),
        )
    )

    written = setup.run("-vv", str(suite))

    assert written.status == 1
    stdout = written.text("stdout")
    assert stdout.count("token request") == 2  # the first, then after the 401
    assert "sent again (send 2)" in stdout
    assert len(setup.tokens.issued) == 2
    setup.assert_nothing_leaked(written)


def test_dry_run_leaks_nothing_and_sends_nothing(setup: Setup) -> None:
    suite = setup.suite(_suite(_request("echo", "echo", FAILING_EXPECT)))

    written = setup.run("--dry-run", str(suite))

    assert written.status == 0, written.text("stderr")
    assert "curl " in written.text("stdout")
    assert setup.tokens.token_requests == 0
    assert setup.api.requests == 0
    setup.assert_nothing_leaked(written)


def test_every_outcome_and_option_together_leak_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run at -vv that passes, fails, is refused a token and resends.

    It also writes both report files and the GitHub annotations. A new sink
    that writes a file is added by pointing it into ``setup.outputs``;
    `Setup.run` searches every file there.
    """
    suite = setup.suite(
        _suite(
            _request("echo", "echo"),
            _request("fails", "echo", FAILING_EXPECT),
            _request("refused", "unauthorized"),
        )
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    written = setup.run(
        "-vv",
        "--concurrency",
        "2",
        "--junit",
        str(setup.outputs / "junit.xml"),
        "--report",
        str(setup.outputs / "report.json"),
        str(suite),
    )

    assert written.status == 1
    assert setup.api.requests == 4
    assert {path.name for path in setup.outputs.iterdir()} == {
        "junit.xml",
        "report.json",
    }
    assert b"::error file=" in written.sinks["stdout"]
    setup.assert_nothing_leaked(written)
