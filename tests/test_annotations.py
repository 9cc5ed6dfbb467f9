"""GitHub Actions annotations: only with ``GITHUB_ACTIONS=true``, at the right line.

Whole runs come from tests/mixed_runs.py (real sockets on 127.0.0.1), with
the environment injected through `RunOptions.env`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.annotations import (
    GitHubAnnotations,
    annotations_wanted,
    escape_data,
    escape_property,
)
from runner.errors import Location
from runner.output import Outcome, State
from runner.secrets import Redactor
from tests.mixed_runs import line_of, mixed_run
from tests.oauth_servers import FixtureServer


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer() as started:
        yield started


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _annotations(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("::")]


def test_annotations_in_github_actions_point_at_each_failed_requests_line(
    server: FixtureServer, in_tmp: Path
) -> None:
    run = mixed_run(server, in_tmp, github=True)

    found = sorted(_annotations(run.out))
    fails = line_of(run.alpha, "name: fails")
    unsent = line_of(run.alpha, "name: cannot connect")
    second = line_of(run.beta, "name: second")
    assert len(found) == 3
    assert found[0].startswith(
        f"::error file=alpha.yaml,line={unsent},col=5,title=alpha > cannot connect::"
        "could not send: ConnectError"
    )
    assert found[1].startswith(
        f"::error file=alpha.yaml,line={fails},col=5,title=alpha > fails::"
        "status: expected 200, got 403"
    )
    assert found[2].startswith(
        f"::error file=beta.yaml,line={second},col=5,title=beta > second::that: "
    )
    run.assert_no_secret_in()


def test_annotation_paths_are_relative_to_the_github_workspace(
    server: FixtureServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job run from a sub-folder (``working-directory:``) still points right."""
    folder = tmp_path / "services" / "billing"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)

    run = mixed_run(server, folder, github=True, workspace=tmp_path)

    found = _annotations(run.out)
    assert len(found) == 3
    assert all(
        line.startswith("::error file=services/billing/alpha.yaml,")
        or line.startswith("::error file=services/billing/beta.yaml,")
        for line in found
    ), found
    run.assert_no_secret_in()


def test_annotations_are_whole_lines_among_the_request_lines(
    server: FixtureServer, in_tmp: Path
) -> None:
    """Workers write at once; an annotation never splits another line."""
    run = mixed_run(server, in_tmp, github=True)

    lines = run.out.splitlines()
    marks = [line for line in lines if line[:4] in ("PASS", "FAIL", "ERR ", "SKIP")]
    reasons = [line for line in lines if line.startswith("       ")]
    annotations = _annotations(run.out)
    assert len(marks) == 8 and len(reasons) == 4 and len(annotations) == 3
    assert len(marks) + len(reasons) + len(annotations) + 1 == len(lines)
    assert all(line.count("::") == 2 for line in annotations)


def test_no_annotations_outside_github_actions(
    server: FixtureServer, in_tmp: Path
) -> None:
    run = mixed_run(server, in_tmp, github=False)

    assert run.status == 1
    assert _annotations(run.out) == []
    assert "::error" not in run.out + run.err


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"GITHUB_ACTIONS": "false"}, False),
        ({"GITHUB_ACTIONS": "1"}, False),
        ({"CI": "true"}, False),
        ({}, False),
    ],
)
def test_annotations_wanted_only_when_github_actions_is_true(
    env: dict[str, str], wanted: bool
) -> None:
    assert annotations_wanted(env) is wanted


def test_escaping_follows_the_workflow_command_rules() -> None:
    assert escape_data("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext: a, b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_annotation_of_a_hostile_reason_stays_one_masked_line(tmp_path: Path) -> None:
    """A reason quoting a server's body cannot start a workflow command."""
    secret = "tok-3f9a-in-a-body"
    written: list[str] = []
    annotations = GitHubAnnotations(written.append, Redactor([secret]), cwd=tmp_path)
    location = Location(str(tmp_path / "suites" / "a,b:c.yaml"), 7, 5, ("requests", 0))

    annotations.outcome(
        Outcome(
            suite="s",
            request="r",
            method="GET",
            url="u",
            state=State.FAILED,
            reasons=(f"body: {secret}\n::add-mask::x\r\n::stop-commands::y",),
            location=location,
        )
    )
    annotations.outcome(Outcome("s", "ok", "GET", "u", State.PASSED))
    annotations.outcome(Outcome("s", "skip", "GET", "u", State.SKIPPED))

    (line,) = written
    assert "\n" not in line and "\r" not in line and secret not in line
    assert line == (
        "::error file=suites/a%2Cb%3Ac.yaml,line=7,col=5,title=s > r::"
        "body: ***%0A::add-mask::x%0D%0A::stop-commands::y"
    )
