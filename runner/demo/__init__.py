"""``runner demo``: run the examples against an embedded, OAuth2-protected API.

The demo is the offline first run of a newcomer: it starts `DemoServer` (in
`runner.demo.server`) on a free loopback port, hands its addresses and
client ids to the example connection files as ``--var`` values and the
client secrets through ``env`` (so only the secrets are masked), runs the
``examples/`` suites exactly as ``runner run examples/`` would, and stops
the server. Its tokens live two seconds, so the output shows a renewal.

This module imports nothing heavy: the server and the sending machinery
(httpx) are imported when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner.exits import ExitStatus

if TYPE_CHECKING:
    import argparse

__all__ = ["DEMO_CONCURRENCY", "DEMO_TOKEN_LIFETIME", "demo_command", "find_examples"]

# Long enough for every request of a suite to fit comfortably in one token,
# short enough that the example suites outlive it and show a renewal.
DEMO_TOKEN_LIFETIME = 2.0
# One suite at a time keeps the output in the order of the files, which
# reads best for a first run.
DEMO_CONCURRENCY = 1


def find_examples() -> Path | None:
    """The ``examples/`` folder of a source checkout, next to the package."""
    import runner

    candidate = Path(runner.__file__).resolve().parent.parent / "examples"
    return candidate if candidate.is_dir() else None


def demo_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Serve the demo API, run the example suites against it, return the exit status.

    Args:
        args: The parsed ``runner demo`` arguments: ``examples`` (a folder, or
            None for the checkout's own) and ``no_color``.
        out: Where the runner's report goes.
        err: Where errors go.
    """
    examples: Path | None = getattr(args, "examples", None) or find_examples()
    if examples is None:
        message = (
            "runner demo: no examples/ folder next to the package (an installed "
            "copy has none); pass --examples PATH of a source checkout's examples/\n"
        )
        err.write(message)
        return ExitStatus.INVALID
    if not examples.is_dir():
        err.write(f"runner demo: {examples}: not a folder\n")
        return ExitStatus.INVALID

    from runner.demo.server import DemoServer
    from runner.running import RunOptions, execute

    color = False if getattr(args, "no_color", False) else None
    concurrency = getattr(args, "concurrency", None) or DEMO_CONCURRENCY
    with DemoServer(token_lifetime=DEMO_TOKEN_LIFETIME) as server:
        out.write(
            f"demo API on {server.url} (token lifetime {DEMO_TOKEN_LIFETIME:g} s)\n"
        )
        out.flush()
        options = RunOptions(
            paths=[examples],
            env={**os.environ, **server.environment()},
            variables=server.variables(),
            concurrency=concurrency,
            color=color,
        )
        return execute(options, out=out, err=err)
