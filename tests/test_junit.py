"""``--junit``: the file validates against Jenkins' junit-10.xsd and says it all.

Whole runs come from tests/mixed_runs.py (real sockets on 127.0.0.1); the
JSON report of the same runs is tested in test_report.py, the interrupted
run's files in test_report_files.py.
"""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema

from runner.cli import main
from runner.collecting import Collector, SuiteResults
from runner.junit import JUnitReport, junit_xml
from runner.loading import load_paths
from runner.output import Outcome, RunSummary, RunTotals, State
from runner.secrets import Redactor
from runner.templates import Templates
from tests.mixed_runs import ALPHA_CASES, BETA_CASES, SECRET_ENV, line_of, mixed_run
from tests.oauth_servers import FixtureServer

XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(XSD)


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer() as started:
        yield started


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cases(suite: ET.Element) -> list[str]:
    return [case.attrib["name"] for case in suite.iter("testcase")]


def _summary(seconds: float = 0.5) -> RunSummary:
    return RunSummary(suites=1, totals=RunTotals(), tokens_fetched=0, seconds=seconds)


def test_junit_of_a_mixed_run_validates_against_the_jenkins_xsd(
    server: FixtureServer, in_tmp: Path, junit_schema: xmlschema.XMLSchema
) -> None:
    junit = in_tmp / "junit.xml"

    run = mixed_run(server, in_tmp, junit=junit)

    assert run.status == 1
    junit_schema.validate(str(junit))  # raises with the first violation


def test_junit_counts_and_order_follow_the_suite_files(
    server: FixtureServer, in_tmp: Path
) -> None:
    junit = in_tmp / "junit.xml"

    mixed_run(server, in_tmp, junit=junit)

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        "8",
        "2",
        "1",
    )
    alpha, beta = root.findall("testsuite")
    assert alpha.attrib["name"] == "alpha" and alpha.attrib["file"] == "alpha.yaml"
    counts = [alpha.get(name) for name in ("tests", "failures", "errors", "skipped")]
    assert counts == ["6", "1", "1", "1"]
    assert alpha.get("timestamp") and float(alpha.attrib["time"]) > 0
    assert _cases(alpha) == [
        "passes",
        "fails",
        "skipped",
        "cannot connect",
        "repeated (1 of 2)",
        "repeated (2 of 2)",
    ]
    assert len(_cases(alpha)) == len(ALPHA_CASES)
    assert _cases(beta) == BETA_CASES
    assert {case.attrib["classname"] for case in alpha.iter("testcase")} == {"alpha"}


def test_junit_failure_error_and_skip_carry_reasons_and_the_request_line(
    server: FixtureServer, in_tmp: Path
) -> None:
    junit = in_tmp / "junit.xml"

    run = mixed_run(server, in_tmp, junit=junit)

    cases = {
        case.attrib["name"]: case for case in ET.parse(junit).getroot().iter("testcase")
    }
    failure = cases["fails"].find("failure")
    assert failure is not None
    assert failure.attrib["message"].startswith("status: expected 200, got 403")
    assert failure.text is not None
    assert failure.text.startswith(f"alpha.yaml:{line_of(run.alpha, 'name: fails')}:5")
    skipped = cases["skipped"].find("skipped")
    assert skipped is not None and "'flag'" in skipped.attrib["message"]
    error = cases["cannot connect"].find("error")
    assert error is not None and "could not send" in error.attrib["message"]
    that = cases["second"].find("failure")
    assert that is not None and "that: response.json.path" in that.attrib["message"]
    assert list(cases["passes"]) == []
    assert float(cases["passes"].attrib["time"]) > 0


def test_junit_file_holds_no_secret_and_masks_env_values_in_urls(
    server: FixtureServer, in_tmp: Path
) -> None:
    junit = in_tmp / "junit.xml"

    run = mixed_run(server, in_tmp, junit=junit)

    data = junit.read_bytes()
    run.assert_no_secret_in(data)
    assert b"trace=***" in data


def test_junit_is_written_through_the_command_line_and_leaves_no_temporary_file(
    server: FixtureServer, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, server.client_secret)
    (in_tmp / "connection.yaml").write_text(
        f"url: {server.api_url}\ntoken_url: {server.token_url}\n"
        f"client_id: {server.client_id}\n"
        f'client_secret: "{{{{ env.{SECRET_ENV} }}}}"\n',
        encoding="utf-8",
    )
    (in_tmp / "s.yaml").write_text(
        "connection: connection.yaml\nrequests: [{url: a}]\n", encoding="utf-8"
    )
    (in_tmp / "out").mkdir()
    out = io.StringIO()

    status = main(
        ["run", "--no-color", "--junit", "out/junit.xml", "s.yaml"],
        stdout=out,
        stderr=io.StringIO(),
    )

    assert status == 0, out.getvalue()
    assert [path.name for path in (in_tmp / "out").iterdir()] == ["junit.xml"]
    root = ET.parse(in_tmp / "out" / "junit.xml").getroot()
    assert _cases(root) == ["GET a"]


def test_junit_xml_removes_characters_xml_forbids_and_masks_secrets(
    junit_schema: xmlschema.XMLSchema, tmp_path: Path
) -> None:
    """A reason can hold anything a server sent: NUL, ESC, a lone surrogate."""
    secret = "pa55-w0rd-in-a-body"
    outcome = Outcome(
        suite='s <&> "q"',
        request="r\x00\x1b[31m",
        method="GET",
        url=f"http://127.0.0.1:9/?k={secret}",
        state=State.FAILED,
        status=500,
        elapsed_ms=1.5,
        reasons=(f"body: \x07{secret}\ud800 \x0c end", "second\nline"),
    )
    suites = _collected(tmp_path, [outcome])

    document = junit_xml(suites, _summary(), Redactor([secret]))

    assert secret not in document
    assert not any(char in document for char in "\x00\x1b\x07\x0c\ud800")
    junit_schema.validate(document)
    case = ET.fromstring(document).find("testsuite/testcase")
    assert case is not None and case.attrib["name"] == "r[31m"
    failure = case.find("failure")
    assert failure is not None
    assert failure.attrib["message"] == "body: ***  end; second\nline"


def test_junit_cases_keep_request_order_whatever_order_outcomes_arrive_in(
    tmp_path: Path,
) -> None:
    outcomes = [
        Outcome("s", f"r{index}", "GET", "u", State.PASSED) for index in range(4)
    ]
    suites = _collected(tmp_path, outcomes, order=[3, 1, 0, 2])

    root = ET.fromstring(junit_xml(suites, _summary(), Redactor()))

    assert _cases(root) == ["r0", "r1", "r2", "r3"]


def test_junit_report_that_cannot_write_says_why_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file should go: the rename fails
    report = JUnitReport(target, Redactor(), [])

    report.finished(_summary())

    assert report.problem is not None
    assert report.problem.startswith(f"--junit {target}: could not write the file")
    assert [path.name for path in tmp_path.iterdir()] == ["taken"]


def _collected(
    folder: Path, outcomes: list[Outcome], order: list[int] | None = None
) -> list[SuiteResults]:
    """`outcomes` placed on the requests of a loaded suite, fed in `order`."""
    names = ", ".join(f"{{name: r{index}}}" for index in range(len(outcomes)))
    suite_file = folder / "s.yaml"
    suite_file.write_text(
        f"name: s\nconnection: {{url: 'http://127.0.0.1:9'}}\nrequests: [{names}]\n",
        encoding="utf-8",
    )
    redactor = Redactor()
    loaded = load_paths(
        [suite_file],
        env={},
        variables={},
        redactor=redactor,
        templates=Templates({}, redactor),
        for_run=True,
    )
    assert not loaded.errors
    (suite,) = loaded.suites
    placed = [
        dataclasses.replace(outcome, location=request.location)
        for outcome, request in zip(outcomes, suite.requests, strict=True)
    ]
    collector = Collector(loaded.suites)
    for index in order or range(len(placed)):
        collector.add(placed[index])
    return collector.results()
