"""``--junit FILE``: the run as JUnit XML, for the test reports of CI servers.

The shape is the one Jenkins' xUnit plugin publishes as ``junit-10.xsd``,
which GitLab and the GitHub test-report actions read as well:
``<testsuites>`` holds one ``<testsuite>`` per suite file, which holds one
``<testcase>`` per send of a request, in the order the requests are
written. A request that failed its expectations has a ``<failure>``, one
that could not be sent an ``<error>``, a skipped one ``<skipped>``; each
carries the reasons in ``message`` and, in its text, where the request is
written and what was sent.

Known shortcoming: ``file`` and ``line`` are not set on ``<testcase>``:
junit-10.xsd rejects them there, and a report that fails its schema is
refused by the strictest readers. The suite's ``file`` is on
``<testsuite>``, the request's line is in each failure's text, and the
GitHub annotations (`runner.annotations`) point at the line.

Every string is masked with the run's `Redactor`; characters that XML 1.0
forbids (most control characters) are removed, since no parser would read
the file otherwise. The file is written after the run, also when requests
failed or the run was interrupted (then it holds what finished).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from runner.collecting import Collector, Entry, SuiteResults
from runner.output import Outcome, RunSummary, State
from runner.reportfiles import relative_path, write_atomically
from runner.secrets import Redactor

if TYPE_CHECKING:
    from runner.loading import LoadedSuite

__all__ = ["JUnitReport", "junit_xml"]

# XML 1.0, section 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF]
#   | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Lone surrogates fall outside.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# What each element's ``type`` says, for readers that show it.
_PROBLEMS = {
    State.FAILED: ("failure", "expectation"),
    State.ERROR: ("error", "not sent"),
    State.SKIPPED: ("skipped", "skipped"),
}


class _Text:
    """Masks, then cleans, every string that goes into the document."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def __call__(self, text: str) -> str:
        cleaned = _NOT_XML_CHAR.sub("", self._redactor.redact(text))
        # Once more: removing a character may have joined a secret's halves.
        return self._redactor.redact(cleaned)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _timestamp(wall_time: float) -> str:
    moment = datetime.fromtimestamp(wall_time, UTC)
    return moment.isoformat(timespec="seconds")


def _case_name(entry: Entry) -> str:
    name = entry.outcome.request
    if entry.sends > 1:
        name += f" ({entry.send} of {entry.sends})"
    return name


def _class_name(outcome: Outcome) -> str:
    """The suite file as a dotted name: ``billing/smoke.yaml`` is ``billing.smoke``.

    Readers key test cases on class name and name; suite names repeat
    across folders (the default one is the file stem), file paths do not.
    """
    if outcome.location is None:
        return outcome.suite
    path = PurePosixPath(relative_path(outcome.location.file).replace("\\", "/"))
    parts = [part for part in path.with_suffix("").parts if part not in ("", ".", "/")]
    return ".".join(parts) or outcome.suite


def _details(outcome: Outcome) -> str:
    """The text of a failure: where the request is, what was sent, why."""
    lines: list[str] = []
    if outcome.location is not None:
        location = outcome.location
        where = relative_path(location.file)
        lines.append(f"{where}:{location.line}:{location.column}")
    sent = f"{outcome.method} {outcome.url}"
    if outcome.status is not None:
        sent += f" -> {outcome.status}"
    lines.append(sent)
    lines += outcome.reasons
    return "\n".join(lines)


def _testcase(parent: ET.Element, entry: Entry, text: _Text) -> None:
    outcome = entry.outcome
    case = ET.SubElement(
        parent,
        "testcase",
        {
            "name": text(_case_name(entry)),
            "classname": text(_class_name(outcome)),
            "time": _seconds(entry.seconds),
        },
    )
    if outcome.state in _PROBLEMS:
        tag, kind = _PROBLEMS[outcome.state]
        message = "; ".join(outcome.reasons) or outcome.state.value
        problem = ET.SubElement(case, tag, {"message": text(message), "type": kind})
        problem.text = text(_details(outcome))
    if outcome.attempts > 1:
        # junit-10.xsd has no attribute for it; readers show system-out.
        output = ET.SubElement(case, "system-out")
        output.text = f"{outcome.attempts} attempts in {entry.seconds:.3f} s"


def _testsuite(parent: ET.Element, suite: SuiteResults, text: _Text) -> None:
    element = ET.SubElement(
        parent,
        "testsuite",
        {
            "name": text(suite.name),
            "tests": str(len(suite.entries)),
            "failures": str(suite.count(State.FAILED)),
            "errors": str(suite.count(State.ERROR)),
            "skipped": str(suite.count(State.SKIPPED)),
            "time": _seconds(suite.seconds),
            "timestamp": _timestamp(suite.started_at),
            "file": text(relative_path(suite.file)),
        },
    )
    for entry in suite.entries:
        _testcase(element, entry, text)


def junit_xml(
    suites: Sequence[SuiteResults], summary: RunSummary, redactor: Redactor
) -> str:
    """The JUnit XML document of a run, masked, with its XML declaration."""
    text = _Text(redactor)
    root = ET.Element(
        "testsuites",
        {
            "name": "runner",
            "tests": str(sum(len(suite.entries) for suite in suites)),
            "failures": str(sum(suite.count(State.FAILED) for suite in suites)),
            "errors": str(sum(suite.count(State.ERROR) for suite in suites)),
            "time": _seconds(summary.seconds),
        },
    )
    for suite in suites:
        _testsuite(root, suite, text)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


class JUnitReport:
    """A `runner.output.RunListener` that writes the JUnit XML file at the end.

    Args:
        path: The file to write.
        redactor: The run's redactor.
        suites: The run's suites, in command-line order.

    Attributes:
        problem: After `finished`, why the file could not be written, or None.
    """

    def __init__(
        self, path: Path, redactor: Redactor, suites: Sequence[LoadedSuite]
    ) -> None:
        self.path = path
        self.problem: str | None = None
        self._redactor = redactor
        self._collector = Collector(suites)

    def outcome(self, outcome: Outcome) -> None:
        """Keep `outcome` for the file."""
        self._collector.add(outcome)

    def finished(self, summary: RunSummary) -> None:
        """Write the file from what arrived; a failure is kept in `problem`."""
        document = junit_xml(self._collector.results(), summary, self._redactor)
        try:
            write_atomically(self.path, document)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            self.problem = f"--junit {self.path}: could not write the file: {reason}"
