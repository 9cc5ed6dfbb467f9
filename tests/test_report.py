"""``--report``: the JSON report validates against its exported schema and is whole.

Whole runs come from tests/mixed_runs.py (real sockets on 127.0.0.1); the
schema's drift is checked with the others in test_schema_drift.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.cli import main
from runner.report import FORMAT_VERSION, Report
from tests.mixed_runs import ALPHA_CASES, BETA_CASES, line_of, mixed_run
from tests.oauth_servers import FixtureServer

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer() as started:
        yield started


@pytest.fixture
def report_of_a_mixed_run(
    server: FixtureServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], bytes]:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "report.json"

    run = mixed_run(server, tmp_path, report=path)

    assert run.status == 1
    data = path.read_bytes()
    run.assert_no_secret_in(data)
    return json.loads(data), data


def _requests(report: dict[str, Any], suite: int) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = report["suites"][suite]["requests"]
    return requests


def test_report_of_a_mixed_run_validates_against_the_exported_schema(
    report_of_a_mixed_run: tuple[dict[str, Any], bytes],
) -> None:
    report, _ = report_of_a_mixed_run
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)

    errors = list(Draft202012Validator(schema).iter_errors(report))

    assert errors == []
    Report.model_validate(report)  # and the models read it back


def test_report_has_version_times_exit_status_tokens_and_counts(
    report_of_a_mixed_run: tuple[dict[str, Any], bytes],
) -> None:
    report, _ = report_of_a_mixed_run

    assert report["format_version"] == FORMAT_VERSION
    started = datetime.fromisoformat(report["started"])
    finished = datetime.fromisoformat(report["finished"])
    assert started.tzinfo is not None and started <= finished
    assert 0 < report["wall_seconds"] < 30
    assert report["exit_status"] == 1 and report["interrupted"] is False
    assert report["tokens_fetched"] == 1
    assert report["token_requests"] >= 1
    assert report["counts"] == {
        "total": 8,
        "passed": 4,
        "failed": 2,
        "error": 1,
        "skipped": 1,
    }


def test_report_lists_requests_in_file_order_with_state_status_and_line(
    report_of_a_mixed_run: tuple[dict[str, Any], bytes], tmp_path: Path
) -> None:
    report, _ = report_of_a_mixed_run
    alpha_file = tmp_path / "alpha.yaml"

    assert [(suite["name"], suite["file"]) for suite in report["suites"]] == [
        ("alpha", "alpha.yaml"),
        ("beta", "beta.yaml"),
    ]
    alpha = _requests(report, 0)
    assert [request["name"] for request in alpha] == ALPHA_CASES
    assert [request["name"] for request in _requests(report, 1)] == BETA_CASES
    states = [request["state"] for request in alpha]
    assert states == ["passed", "failed", "skipped", "error", "passed", "passed"]
    assert [request["status"] for request in alpha] == [200, 403, None, None, 200, 200]
    assert [request["send"] for request in alpha[4:]] == [1, 2]
    fails = alpha[1]
    assert fails["line"] == line_of(alpha_file, "name: fails")
    assert fails["column"] == 5 and fails["file"] == "alpha.yaml"
    assert fails["reasons"][0].startswith("status: expected 200, got 403")
    assert fails["method"] == "GET" and "/api/forbidden?trace=***" in fails["url"]
    assert report["suites"][0]["counts"]["skipped"] == 1


def test_report_has_attempts_and_timings_of_each_send(
    report_of_a_mixed_run: tuple[dict[str, Any], bytes],
) -> None:
    report, _ = report_of_a_mixed_run
    requests = _requests(report, 0) + _requests(report, 1)

    assert all(request["attempts"] == 1 for request in requests)
    answered = [request for request in requests if request["status"] is not None]
    assert len(answered) == 6
    assert all(0 < request["elapsed_ms"] < 30_000 for request in answered)
    unanswered = [request for request in requests if request["status"] is None]
    assert [request["elapsed_ms"] for request in unanswered] == [None, None]


def test_report_masks_env_values_and_holds_no_secret(
    report_of_a_mixed_run: tuple[dict[str, Any], bytes],
) -> None:
    """The fixture searched every byte; the masks are where the values were."""
    _, data = report_of_a_mixed_run

    assert data.count(b"trace=***") == 3


def test_schema_check_fails_after_a_report_model_change() -> None:
    """The drift test of test_schema_drift.py covers the report's schema too."""
    field = Report.model_fields["tokens_fetched"]
    original = field.description
    field.description = "Changed by a test."
    Report.model_rebuild(force=True)
    try:
        out = io.StringIO()
        status = main(["schema", "--check", "--output", str(SCHEMA.parent)], stdout=out)
    finally:
        field.description = original
        Report.model_rebuild(force=True)

    assert status == 1
    assert out.getvalue() == (
        f"{SCHEMA.parent / 'report.schema.json'}: differs from the models; "
        "run `runner schema`\n"
    )
