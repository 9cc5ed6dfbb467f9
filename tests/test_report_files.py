"""Report files as files: refused paths send nothing, an interrupted run writes them.

What the files hold is tested in test_junit.py and test_report.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema

from runner.cli import main
from runner.reportfiles import check_output_path, relative_path, write_atomically
from tests.mixed_runs import SECRET_ENV
from tests.oauth_servers import FixtureServer

XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as started:
        monkeypatch.setenv(SECRET_ENV, started.client_secret)
        yield started


def _suite(folder: Path, server: FixtureServer, requests: str) -> Path:
    (folder / "connection.yaml").write_text(
        f"url: {server.api_url}\ntoken_url: {server.token_url}\n"
        f"client_id: {server.client_id}\n"
        f'client_secret: "{{{{ env.{SECRET_ENV} }}}}"\n',
        encoding="utf-8",
    )
    suite = folder / "suite.yaml"
    suite.write_text(
        f"connection: connection.yaml\nrequests: {requests}\n", encoding="utf-8"
    )
    return suite


@pytest.mark.parametrize("option", ["--junit", "--report"])
def test_report_path_in_a_missing_folder_exits_2_before_sending(
    option: str, server: FixtureServer, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, server, "[{url: a}]")
    target = tmp_path / "missing" / "out.file"
    out, err = io.StringIO(), io.StringIO()

    status = main(["run", option, str(target), str(suite)], stdout=out, stderr=err)

    assert status == 2
    assert err.getvalue() == (
        f"{option} {target}: the folder {target.parent} does not exist; "
        "nothing was sent\n"
    )
    assert out.getvalue() == ""
    assert server.token_requests == 0 and server.api_requests == 0


def test_report_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    assert check_output_path("--report", tmp_path) == (
        f"--report {tmp_path}: is a folder, not a file"
    )
    assert check_output_path("--report", tmp_path / "new.json") is None


def test_write_atomically_replaces_a_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    write_atomically(target, "new ✓\n")

    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_relative_path_is_relative_to_the_folder_or_absolute_outside_it(
    tmp_path: Path,
) -> None:
    inside = tmp_path / "suites" / "a.yaml"

    assert relative_path(str(inside), tmp_path) == "suites/a.yaml"
    assert relative_path(str(tmp_path), inside.parent) == tmp_path.as_posix()


def test_interrupted_run_writes_both_files_with_what_finished(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, server, "[{url: a}, {url: b, delay: 20000}]")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    env = {**os.environ, SECRET_ENV: server.client_secret}
    env.pop("GITHUB_ACTIONS", None)
    command = [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--no-color",
        "--junit",
        str(junit),
        "--report",
        str(report),
        str(suite),
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("PASS")
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            rest, errors = process.communicate(timeout=10)
        finally:
            process.kill()

    assert process.returncode == 130, rest + errors
    assert time.monotonic() - started < 5
    xmlschema.XMLSchema(XSD).validate(str(junit))
    # The signal came during b's delay: b is reported skipped, in both files.
    first, second = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert first.attrib["name"] == "GET a" and list(first) == []
    skipped = second.find("skipped")
    assert second.attrib["name"] == "GET b"
    assert skipped is not None and skipped.get("message") == "run interrupted"
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["interrupted"] is True and document["exit_status"] == 130
    requests = document["suites"][0]["requests"]
    assert [request["state"] for request in requests] == ["passed", "skipped"]
    assert requests[1]["reasons"] == ["run interrupted"]
    assert server.api_requests == 1
    for data in (junit.read_bytes(), report.read_bytes()):
        assert server.client_secret.encode() not in data
        assert all(token.encode() not in data for token in server.issued)
