"""The end of a run: Ctrl-C during a send, empty shards, the exit status, the files.

Whole runs over 127.0.0.1: the OAuth2 fixture server, and `HangingServer`
below for a send that never gets an answer. How the files read is tested in
test_junit.py and test_report.py; an interrupt during a delay in
test_report_files.py and test_run_command.py.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema

import runner.junit
from runner.cli import main
from runner.exits import ExitStatus
from runner.running import RunOptions, execute
from tests.oauth_servers import FixtureServer, Reply, SecretWatch

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"
XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"
HOST = "127.0.0.1"


class HangingServer:
    """Accepts connections on 127.0.0.1 and never answers them.

    A client that sends a request here blocks reading the response until
    its own timeout. `close` cuts every connection (the client then sees
    the connection end) and joins the accepting thread.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        connected: Set once the first connection is accepted.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.url = f"http://{HOST}:{self._listener.getsockname()[1]}"
        self.connected = threading.Event()
        self._accepted: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hanging-server")
        self._thread.start()

    def __enter__(self) -> HangingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._accepted.append(connection)
            self.connected.set()

    def cut(self) -> None:
        """End every accepted connection, unanswered."""
        for connection in self._accepted:
            with contextlib.suppress(OSError):  # cut already
                connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting, cut and close every connection."""
        self._closing.set()
        self._thread.join(timeout=5)
        self.cut()
        for connection in self._accepted:
            connection.close()
        self._listener.close()


@pytest.fixture
def server(
    watch: SecretWatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FixtureServer:
    """A fixture server, its connection file in tmp_path, and tmp_path as cwd."""
    fixture = watch.fixture_server()
    monkeypatch.setenv(SECRET_ENV, fixture.client_secret)
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path / "connection.yaml",
        f"""\
        url: {fixture.api_url}
        token_url: {fixture.token_url}
        client_id: {fixture.client_id}
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        """,
    )
    return fixture


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    with HangingServer() as started:
        yield started


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _run(watch: SecretWatch, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    watch.seen(out.getvalue(), err.getvalue())
    return status, out.getvalue(), err.getvalue()


def _hanging_suites(folder: Path, hanging: HangingServer) -> list[Path]:
    """Suite a: a pass, a send that hangs, one more; suite b: one request twice."""
    first = _write(
        folder / "a.yaml",
        f"""\
        name: a
        connection: connection.yaml
        requests:
          - {{name: first, url: first}}
          - {{name: hang, url: "{hanging.url}/hang", timeout: 20}}
          - {{name: after, url: after}}
        """,
    )
    second = _write(
        folder / "b.yaml",
        """\
        name: b
        connection: connection.yaml
        requests: [{name: twice, url: twice, repeat: 2}]
        """,
    )
    return [first, second]


def _lines(out: str) -> list[str]:
    """The outcome lines and the summary, reasons left out."""
    return [line for line in out.splitlines() if not line.startswith(" ")]


def test_interrupt_during_a_hung_send_reports_every_request_and_exits_at_once(
    server: FixtureServer, hanging: HangingServer, tmp_path: Path
) -> None:
    """The skips come before the summary and are in both files; no wait for timeout."""
    suites = _hanging_suites(tmp_path, hanging)
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    env = {**os.environ, SECRET_ENV: server.client_secret}
    env.pop("GITHUB_ACTIONS", None)
    command = [
        *(sys.executable, "-m", "runner", "run", "--no-color", "--concurrency", "1"),
        *("--junit", str(junit), "--report", str(report)),
        *map(str, suites),
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert hanging.connected.wait(timeout=10), "the hanging send never came"
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            out, errors = process.communicate(timeout=10)
            took = time.monotonic() - started
        finally:
            process.kill()

    assert process.returncode == ExitStatus.INTERRUPTED, out + errors
    assert took < 5  # the hanging send's timeout is 20 s
    assert errors == ""
    first, *skipped_lines, summary = _lines(out)
    assert first.startswith(f"PASS  a > first  GET {server.api_url}/first  200  ")
    assert skipped_lines == [
        f"SKIP  a > hang  GET {hanging.url}/hang",
        "SKIP  a > after  GET after",
        "SKIP  b > twice  GET twice",
        "SKIP  b > twice  GET twice",
    ]
    assert summary.startswith(
        "2 suites, 5 requests: 1 passed, 0 failed, 4 skipped; 1 token fetched; "
    )
    assert out.count("       run interrupted\n") == 4

    xmlschema.XMLSchema(XSD).validate(str(junit))
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "5"
    cases = root.findall("testsuite/testcase")
    assert [case.get("name") for case in cases] == [
        "first",
        "hang",
        "after",
        "twice (1 of 2)",
        "twice (2 of 2)",
    ]
    skipped = [case.find("skipped") for case in cases[1:]]
    assert [element.get("message") for element in skipped if element is not None] == [
        "run interrupted"
    ] * 4
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["exit_status"] == 130 and document["interrupted"] is True
    assert document["counts"] == {
        "total": 5,
        "passed": 1,
        "failed": 0,
        "error": 0,
        "skipped": 4,
    }
    assert [suite["counts"]["total"] for suite in document["suites"]] == [3, 2]
    assert server.api_requests == 1
    for data in (out.encode(), junit.read_bytes(), report.read_bytes()):
        assert server.client_secret.encode() not in data
        assert all(token.encode() not in data for token in server.issued)


def test_execute_interrupted_leaves_a_stuck_worker_whose_late_outcome_is_dropped(
    server: FixtureServer,
    hanging: HangingServer,
    watch: SecretWatch,
    tmp_path: Path,
) -> None:
    """In-process: Ctrl-C returns 130; the send, cut later, prints nothing more."""
    suites = _hanging_suites(tmp_path, hanging)
    options = RunOptions(
        paths=suites,
        env={SECRET_ENV: server.client_secret},
        concurrency=1,
        color=False,
        progress=False,
    )
    out, err = io.StringIO(), io.StringIO()
    main_thread = threading.get_ident()

    def interrupt_once_hung() -> None:
        if hanging.connected.wait(timeout=10):
            signal.pthread_kill(main_thread, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_hung, name="interrupter")
    interrupter.start()
    try:
        status = execute(options, out=out, err=err)
    finally:
        interrupter.join(timeout=15)
    written = out.getvalue()

    # The worker is still blocked in its send; cut it, and let it finish.
    stuck = [thread for thread in threading.enumerate() if thread.name == "suite-0"]
    assert len(stuck) == 1 and stuck[0].daemon
    hanging.cut()
    stuck[0].join(timeout=5)
    watch.seen(out.getvalue(), err.getvalue())

    assert status == ExitStatus.INTERRUPTED
    assert not stuck[0].is_alive()
    assert out.getvalue() == written  # its ERR and SKIP lines were dropped
    assert written.splitlines()[-1].startswith("2 suites, 5 requests: 1 passed")
    assert err.getvalue() == ""


def test_empty_shard_writes_empty_report_files_and_exits_0(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        _write(
            tmp_path / f"{name}.yaml", "connection: connection.yaml\nrequests: [{}]\n"
        )
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"

    status, out, err = _run(
        watch, "--shard", "3/3", "--junit", str(junit), "--report", str(report),
        "a.yaml", "b.yaml",
    )  # fmt: skip

    assert status == ExitStatus.OK, out + err
    assert out == (
        "shard 3/3: none of the 2 suite files falls in this shard; nothing to send\n"
    )
    xmlschema.XMLSchema(XSD).validate(str(junit))
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "0" and list(root) == []
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["suites"] == [] and document["exit_status"] == 0
    assert document["counts"]["total"] == 0
    assert server.token_requests == 0 and server.api_requests == 0


def test_junit_file_not_written_makes_the_run_and_its_report_exit_1(
    server: FixtureServer,
    watch: SecretWatch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The JSON report, written after the JUnit file, has the status the run has."""
    _write(tmp_path / "suite.yaml", "connection: connection.yaml\nrequests: [{}]\n")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"

    def disk_full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # The disk fills up after the paths were checked; the report goes elsewhere.
    monkeypatch.setattr(runner.junit, "write_atomically", disk_full)
    status, out, err = _run(
        watch, "--junit", str(junit), "--report", str(report), "suite.yaml"
    )

    assert status == ExitStatus.FAILED
    assert "1 passed, 0 failed" in out.splitlines()[-1]
    assert err == (
        f"--junit {junit}: could not write the file: No space left on device\n"
    )
    assert not junit.exists()
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["exit_status"] == status == 1
    assert document["counts"]["passed"] == 1


@pytest.mark.parametrize("spelling", ["same.out", "sub/../same.out", "link.out"])
def test_junit_and_report_naming_one_file_exit_2_before_sending(
    spelling: str, server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    _write(tmp_path / "suite.yaml", "connection: connection.yaml\nrequests: [{}]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.out").symlink_to(tmp_path / "same.out")

    status, out, err = _run(
        watch, "--junit", "same.out", "--report", spelling, "suite.yaml"
    )

    assert status == ExitStatus.INVALID
    assert out == ""
    assert err == (
        f"--junit same.out and --report {spelling}: the same file; each report "
        "needs its own; nothing was sent\n"
    )
    assert server.token_requests == 0 and server.api_requests == 0
    assert not (tmp_path / "same.out").exists()


def test_fail_fast_ends_a_token_retry_wait_and_skips_its_request(
    watch: SecretWatch, server: FixtureServer, tmp_path: Path
) -> None:
    """The token endpoint asked for 20 s; the other suite's failure ends that."""
    server.replies.append(Reply.json(503, {}, {"Retry-After": "20"}))
    _write(
        tmp_path / "waits.yaml",
        """\
        name: waits
        connection: connection.yaml
        requests:
          - {name: needs a token, url: items}
        """,
    )
    plain = tmp_path / "plain.yaml"
    _write(plain, f"url: {server.url}/nowhere\n")
    _write(
        tmp_path / "fails.yaml",
        """\
        name: fails
        connection: plain.yaml
        requests:
          - {name: broken, url: x, delay: 300}
        """,
    )

    started = time.monotonic()
    status, out, _ = _run(
        watch, "--fail-fast", "--concurrency", "2", "waits.yaml", "fails.yaml"
    )

    assert status == ExitStatus.FAILED
    assert time.monotonic() - started < 10
    assert server.token_requests == 1
    lines = _lines(out)
    waited = next(line for line in lines if "waits > needs a token" in line)
    assert waited.startswith("SKIP"), out
    assert "not sent: --fail-fast after a failure in fails > broken" in out
