"""GitHub Actions annotations: a failed request also shows on its suite file's line.

When a run's environment has ``GITHUB_ACTIONS=true`` (GitHub sets it in
every job), each request that failed or could not be sent is also printed
as a workflow command::

    ::error file=suites/billing.yaml,line=15,col=5,title=billing > create::...

which GitHub turns into an annotation on that line of the pull request's
diff and of the run's summary. The escaping follows GitHub's rules for
workflow commands: in the message ``%``, CR and LF are percent-encoded, so
that a reason can never end the line and start a command of its own; in
properties ``:`` and ``,`` as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from runner.output import Outcome, RunSummary, State
from runner.reportfiles import relative_path
from runner.secrets import Redactor

__all__ = [
    "GitHubAnnotations",
    "annotations_wanted",
    "escape_data",
    "escape_property",
    "workspace",
]

_ANNOTATED = frozenset({State.FAILED, State.ERROR})


def annotations_wanted(env: Mapping[str, str]) -> bool:
    """Whether the run is a GitHub Actions job (``GITHUB_ACTIONS=true``)."""
    return env.get("GITHUB_ACTIONS") == "true"


def workspace(env: Mapping[str, str]) -> Path | None:
    """The checkout GitHub resolves annotation paths against (``GITHUB_WORKSPACE``).

    A job may run from a sub-folder (``working-directory:`` in a monorepo);
    paths relative to the current folder would then point at other files.
    """
    folder = env.get("GITHUB_WORKSPACE")
    return Path(folder) if folder else None


def escape_data(text: str) -> str:
    """A workflow command's message, escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value, escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GitHubAnnotations:
    """A `runner.output.RunListener` printing an ``::error`` line per failure.

    Args:
        write: Prints one line; the terminal reporter's ``message``, so that
            annotations and request lines never interleave mid-line.
        redactor: The run's redactor.
        cwd: The folder paths are made relative to: the job's `workspace`,
            else the current folder.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        redactor: Redactor,
        *,
        cwd: Path | None = None,
    ) -> None:
        self._write = write
        self._redactor = redactor
        self._cwd = cwd

    def outcome(self, outcome: Outcome) -> None:
        """Print the annotation of a failed or unsent request."""
        if outcome.state not in _ANNOTATED:
            return
        self._write(self.command(outcome))

    def finished(self, summary: RunSummary) -> None:
        """Nothing to add: every annotation was printed as it happened."""

    def command(self, outcome: Outcome) -> str:
        """The ``::error`` line of `outcome`, masked and escaped."""
        mask = self._redactor.redact
        properties: list[tuple[str, str]] = []
        location = outcome.location
        if location is not None:
            properties.append(("file", relative_path(location.file, self._cwd)))
            if location.line > 0:
                properties.append(("line", str(location.line)))
                properties.append(("col", str(location.column)))
        properties.append(("title", f"{outcome.suite} > {outcome.request}"))

        fields = ",".join(
            f"{name}={escape_property(mask(value))}" for name, value in properties
        )
        reasons = outcome.reasons or (outcome.state.value,)
        message = escape_data(mask("\n".join(reasons)))
        return f"::error {fields}::{message}"
