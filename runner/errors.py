"""Every error the runner raises on purpose, in one place.

The hierarchy::

    RunnerError                 base of everything below
    ├── InputError              a file, a value or a command line is wrong
    │   └── TemplateError       a template or expression is wrong
    ├── TokenError              the token endpoint refused or misbehaved
    └── SendError               a request could not be sent or received

Input errors carry where they were found (file, line, column and the YAML
path) and build their one-line message from those attributes, so that
`check` and `run` print them all the same way: ``path:line:column: message``.
Messages never quote the value of a secret field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "InputError",
    "InputErrors",
    "Location",
    "RunnerError",
    "SendError",
    "TemplateError",
    "TokenError",
    "format_yaml_path",
]

PathPart = str | int


def format_yaml_path(path: Sequence[PathPart]) -> str:
    """Write a document path the way users read it: ``requests[2].expect.status``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a file: 1-based line and column, and the document path there."""

    file: str
    line: int = 0
    column: int = 0
    path: tuple[PathPart, ...] = ()

    def prefix(self) -> str:
        """``file:line:column`` or just ``file`` when the position is unknown."""
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


class RunnerError(Exception):
    """Base class of every error the runner raises on purpose."""


class InputError(RunnerError):
    """Something the user wrote is wrong; nothing is sent when one exists."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(self.render())

    def render(self) -> str:
        """The one-line form: ``path:line:column: message (at yaml.path)``."""
        if self.location is None:
            return self.message
        text = f"{self.location.prefix()}: {self.message}"
        if self.location.path:
            text += f" (at {format_yaml_path(self.location.path)})"
        return text

    def __str__(self) -> str:
        return self.render()


class TemplateError(InputError):
    """A template or expression does not compile, or names something undefined."""


class InputErrors(RunnerError):
    """Several input errors found together; `check` and `run` print them all."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(error.render() for error in self.errors))


class TokenError(RunnerError):
    """The token endpoint could not give a token; the connection's requests stop."""

    def __init__(self, message: str, *, connection: str = "") -> None:
        self.message = message
        self.connection = connection
        super().__init__(message)


class SendError(RunnerError):
    """A request could not be sent or its response not read (network, timeout)."""
