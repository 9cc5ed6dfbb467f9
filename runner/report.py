"""``--report FILE``: the run as one JSON document, for scripts and dashboards.

The models below are the format: the file is their JSON, and
``schemas/report.schema.json`` is their export (`runner.schema`), checked
for drift like the schemas of the input files. ``format_version`` changes
when a field is removed or changes meaning; new fields may come without it.

Every string is masked with the run's `Redactor` before it enters a model.
The file is written after the run, also when requests failed or the run was
interrupted (then it holds what finished).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from runner import __version__
from runner.collecting import Collector, Entry, SuiteResults
from runner.output import Outcome, RunSummary, State
from runner.reportfiles import relative_path, write_atomically
from runner.secrets import Redactor

if TYPE_CHECKING:
    from runner.loading import LoadedSuite

__all__ = [
    "FORMAT_VERSION",
    "Counts",
    "JsonReport",
    "Report",
    "RequestReport",
    "SuiteReport",
    "build_report",
]

FORMAT_VERSION = 1

# Every field is always written, so the schema says so (pydantic would
# otherwise leave fields with defaults out of `required`).
_CONFIG = ConfigDict(
    extra="forbid", frozen=True, json_schema_serialization_defaults_required=True
)


class Counts(BaseModel):
    """How many sends ended in each state."""

    model_config = _CONFIG

    total: int = Field(ge=0, description="Every send, whatever its state.")
    passed: int = Field(ge=0)
    failed: int = Field(ge=0, description="A response came and did not match.")
    error: int = Field(ge=0, description="No response: network, timeout, token.")
    skipped: int = Field(ge=0)


class RequestReport(BaseModel):
    """One send of a request (a repeated request has one per send)."""

    model_config = _CONFIG

    name: str = Field(description="The request's name, or its method and URL.")
    method: str
    url: str = Field(description="As sent; as written when it was skipped.")
    state: State
    status: int | None = Field(description="The response status; null if none came.")
    elapsed_ms: float | None = Field(
        ge=0, description="Time to the whole response; null if none came."
    )
    attempts: int = Field(ge=1, description="Sends behind this outcome (retries).")
    spent_ms: float | None = Field(
        ge=0,
        description=(
            "With more than one attempt: all of them and the waits between; "
            "null for a single send."
        ),
    )
    send: int = Field(ge=1, description="Which send of a repeated request, from 1.")
    reasons: list[str] = Field(description="Why it failed, erred or was skipped.")
    file: str = Field(description="The suite file, relative to the current folder.")
    line: int = Field(ge=0, description="Where the request starts (0: unknown).")
    column: int = Field(ge=0)


class SuiteReport(BaseModel):
    """One suite file and its requests, in the order they are written."""

    model_config = _CONFIG

    name: str
    file: str = Field(description="Relative to the current folder.")
    counts: Counts
    requests: list[RequestReport]


class Report(BaseModel):
    """A whole run of ``runner run``."""

    model_config = _CONFIG

    format_version: Literal[1] = Field(description="Of this document's format.")
    runner_version: str
    started: AwareDatetime
    finished: AwareDatetime
    wall_seconds: float = Field(ge=0, description="Loading included.")
    exit_status: int = Field(
        description=(
            "What the run returned: 0 all passed, 1 some failed or not sent "
            "(or the JUnit file could not be written), 130 interrupted."
        )
    )
    interrupted: bool
    tokens_fetched: int = Field(ge=0, description="Access tokens issued to the run.")
    token_requests: int = Field(
        ge=0, description="Token requests sent, retries and refused ones included."
    )
    deselected: int = Field(ge=0, description="Requests that `--tag` left out.")
    counts: Counts
    suites: list[SuiteReport] = Field(
        description="Suites that sent or skipped anything, in command-line order."
    )


def _counts(states: Sequence[State]) -> Counts:
    return Counts(
        total=len(states),
        passed=states.count(State.PASSED),
        failed=states.count(State.FAILED),
        error=states.count(State.ERROR),
        skipped=states.count(State.SKIPPED),
    )


def _request(entry: Entry, mask: Redactor) -> RequestReport:
    outcome: Outcome = entry.outcome
    location = outcome.location
    elapsed = outcome.elapsed_ms
    return RequestReport(
        name=mask.redact(outcome.request),
        method=outcome.method,
        url=mask.redact(outcome.url),
        state=outcome.state,
        status=outcome.status,
        elapsed_ms=round(elapsed, 3) if elapsed is not None else None,
        attempts=outcome.attempts,
        spent_ms=None if outcome.spent_ms is None else round(outcome.spent_ms, 3),
        send=entry.send,
        reasons=[mask.redact(reason) for reason in outcome.reasons],
        file=mask.redact(relative_path(location.file)) if location else "",
        line=location.line if location else 0,
        column=location.column if location else 0,
    )


def _suite(suite: SuiteResults, mask: Redactor) -> SuiteReport:
    return SuiteReport(
        name=mask.redact(suite.name),
        file=mask.redact(relative_path(suite.file)),
        counts=_counts([entry.outcome.state for entry in suite.entries]),
        requests=[_request(entry, mask) for entry in suite.entries],
    )


def build_report(
    suites: Sequence[SuiteResults],
    summary: RunSummary,
    redactor: Redactor,
    *,
    started: datetime,
    finished: datetime,
) -> Report:
    """The report of a run, every string masked."""
    by_state = summary.totals.by_state
    states = [state for state in State for _ in range(by_state[state])]
    return Report(
        format_version=FORMAT_VERSION,
        runner_version=__version__,
        started=started,
        finished=finished,
        wall_seconds=round(summary.seconds, 3),
        exit_status=summary.exit_status,
        interrupted=summary.interrupted,
        tokens_fetched=summary.tokens_fetched,
        token_requests=max(summary.token_requests, summary.tokens_fetched),
        deselected=summary.deselected,
        counts=_counts(states),
        suites=[_suite(suite, redactor) for suite in suites],
    )


class JsonReport:
    """A `runner.output.RunListener` that writes the JSON report at the end.

    Args:
        path: The file to write.
        redactor: The run's redactor.
        suites: The run's suites, in command-line order.
        started: When the run started (aware).

    Attributes:
        problem: After `finished`, why the file could not be written, or None.
    """

    def __init__(
        self,
        path: Path,
        redactor: Redactor,
        suites: Sequence[LoadedSuite],
        *,
        started: datetime,
    ) -> None:
        self.path = path
        self.problem: str | None = None
        self._redactor = redactor
        self._started = started
        self._collector = Collector(suites)

    def outcome(self, outcome: Outcome) -> None:
        """Keep `outcome` for the file."""
        self._collector.add(outcome)

    def finished(self, summary: RunSummary) -> None:
        """Write the file from what arrived; a failure is kept in `problem`."""
        report = build_report(
            self._collector.results(),
            summary,
            self._redactor,
            started=self._started,
            finished=datetime.now(UTC),
        )
        try:
            write_atomically(self.path, report.model_dump_json(indent=2) + "\n")
        except OSError as error:
            reason = error.strerror or type(error).__name__
            self.problem = f"--report {self.path}: could not write the file: {reason}"
