"""The run's printed lines and summary (see test_run_command.py for whole runs)."""

from __future__ import annotations

import io

from runner.output import Outcome, Reporter, RunSummary, RunTotals, State, use_color
from runner.secrets import Redactor

SECRET = "s3cr3t-value-for-output"


def _reporter(*, color: bool = False) -> tuple[Reporter, io.StringIO]:
    stream = io.StringIO()
    return Reporter(stream, Redactor([SECRET]), color=color), stream


def test_outcome_line_shows_mark_names_method_url_status_and_time() -> None:
    reporter, stream = _reporter()
    reporter.outcome(
        Outcome(
            suite="billing",
            request="create invoice",
            method="POST",
            url="http://127.0.0.1:9/api/invoices",
            state=State.PASSED,
            status=201,
            elapsed_ms=12.4,
        )
    )
    assert stream.getvalue() == (
        "PASS  billing > create invoice  POST http://127.0.0.1:9/api/invoices"
        "  201  12 ms\n"
    )


def test_failure_reasons_are_indented_under_the_line_and_masked() -> None:
    reporter, stream = _reporter()
    reporter.outcome(
        Outcome(
            suite="s",
            request="r",
            method="GET",
            url=f"http://127.0.0.1:9/?key={SECRET}",
            state=State.FAILED,
            status=500,
            elapsed_ms=3,
            reasons=(f"status: expected 2xx, got 500 ({SECRET})",),
        )
    )
    text = stream.getvalue()
    assert SECRET not in text
    assert text.splitlines()[1] == "       status: expected 2xx, got 500 (***)"


def test_summary_counts_states_tokens_and_time() -> None:
    reporter, stream = _reporter()
    for state in (State.PASSED, State.PASSED, State.FAILED, State.SKIPPED):
        reporter.outcome(Outcome("s", "r", "GET", "u", state))
    totals = RunTotals()
    for state in (State.PASSED, State.PASSED, State.FAILED, State.SKIPPED):
        totals.add(state)
    reporter.finished(
        RunSummary(suites=2, totals=totals, tokens_fetched=1, seconds=1.234)
    )
    assert stream.getvalue().splitlines()[-1] == (
        "2 suites, 4 requests: 2 passed, 1 failed, 1 skipped; 1 token fetched; 1.23 s"
    )
    assert not totals.all_passed


def test_summary_names_token_requests_when_they_outnumber_tokens() -> None:
    """Four refused attempts are not four tokens: the summary tells them apart."""
    reporter, stream = _reporter()
    totals = RunTotals()
    totals.add(State.ERROR)
    summary = RunSummary(
        suites=1, totals=totals, tokens_fetched=0, token_requests=4, seconds=2.0
    )
    reporter.finished(summary)
    assert stream.getvalue().splitlines()[-1] == (
        "1 suite, 1 requests: 0 passed, 0 failed, 1 could not be sent; "
        "0 tokens fetched in 4 token requests; 2.00 s"
    )


def test_summary_says_token_request_in_the_singular_for_one() -> None:
    reporter, stream = _reporter()
    totals = RunTotals()
    totals.add(State.ERROR)
    summary = RunSummary(
        suites=1, totals=totals, tokens_fetched=0, token_requests=1, seconds=0.5
    )
    reporter.finished(summary)
    assert stream.getvalue().splitlines()[-1] == (
        "1 suite, 1 requests: 0 passed, 0 failed, 1 could not be sent; "
        "0 tokens fetched in 1 token request; 0.50 s"
    )


def test_color_is_used_only_on_a_terminal_without_no_color() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color(Terminal(), no_color=False, environ={})
    assert not use_color(Terminal(), no_color=False, environ={"NO_COLOR": "1"})
    assert not use_color(Terminal(), no_color=True, environ={})
    assert not use_color(io.StringIO(), no_color=False, environ={})
