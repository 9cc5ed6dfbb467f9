"""runner: a declarative HTTP request runner with OAuth2 Client Credentials.

The public names below are what a program that drives the runner imports:
`execute` with `RunOptions` runs suites as ``runner run`` does, `main` is
the command line, the errors are those of `runner.errors`.

The package keeps its import light on purpose: `runner check` runs in
pre-commit hooks and editors, so each name is imported from its module only
when first used (PEP 562), and ``import runner`` alone imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ExitStatus",
    "InputError",
    "Redactor",
    "RunOptions",
    "RunnerError",
    "SendError",
    "TemplateError",
    "TokenError",
    "__version__",
    "execute",
    "main",
]

# Each public name, and the module it lives in.
_HOMES = {
    "ExitStatus": "runner.exits",
    "InputError": "runner.errors",
    "Redactor": "runner.secrets",
    "RunOptions": "runner.running",
    "RunnerError": "runner.errors",
    "SendError": "runner.errors",
    "TemplateError": "runner.errors",
    "TokenError": "runner.errors",
    "execute": "runner.running",
    "main": "runner.cli",
}

if TYPE_CHECKING:
    from runner.cli import main
    from runner.errors import (
        InputError,
        RunnerError,
        SendError,
        TemplateError,
        TokenError,
    )
    from runner.exits import ExitStatus
    from runner.running import RunOptions, execute
    from runner.secrets import Redactor


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
