"""The command line: ``runner run|check|schema|demo``.

`main` takes its arguments and streams as parameters and returns the exit
status, so tests call it directly. Each command's module is imported only
when that command runs: `check` must not pay for httpx.

Exit status: 0 all passed, 1 some request failed or could not be sent,
2 the input is invalid (nothing was sent), 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "console",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130

# The module each command imports, for `console` to import it up front.
_COMMAND_MODULES = {
    "run": "runner.running",
    "check": "runner.checking",
    "demo": "runner.demo",
    "schema": "runner.schema",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with our exit status, not a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        message = f"expected a whole number from 1 to 1024, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runner",
        description="Send declarative HTTP request suites and judge the responses.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="send the suites")
    run.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    run.add_argument("--env-file", type=Path, action="append", default=[])
    run.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", dest="variables"
    )
    run.add_argument("--concurrency", type=_positive_int, default=4, metavar="N")
    run.add_argument("--no-color", action="store_true")

    check = commands.add_parser("check", help="validate and render, send nothing")
    check.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    check.add_argument("--env-file", type=Path, action="append", default=[])
    check.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", dest="variables"
    )

    schema = commands.add_parser("schema", help="write the JSON Schemas")
    schema.add_argument("--check", action="store_true", help="fail if they differ")
    schema.add_argument("--output", type=Path, default=Path("schemas"))

    demo = commands.add_parser("demo", help="run examples/ against a local demo API")
    demo.add_argument("--examples", type=Path, default=None)
    demo.add_argument("--no-color", action="store_true")
    return parser


def _schema_command(args: argparse.Namespace, out: TextIO) -> int:
    from runner.schema import export_schemas

    differing = export_schemas(args.output, check=args.check)
    if args.check:
        for path in differing:
            out.write(f"{path}: differs from the models; run `runner schema`\n")
        return EXIT_FAILED if differing else EXIT_OK
    for path in differing:
        out.write(f"wrote {path}\n")
    if not differing:
        out.write("schemas are up to date\n")
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line and return its exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "schema":
            return _schema_command(args, out)
        if args.command == "check":
            from runner.checking import check_command

            return check_command(args, out=out, err=err)
        if args.command == "run":
            from runner.running import run_command

            return run_command(args, out=out, err=err)
        if args.command == "demo":
            from runner.demo import demo_command

            return demo_command(args, out=out, err=err)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command!r}")


def console() -> int:
    """The ``runner`` command and ``python -m runner``: `main` in its own process.

    Imports the command's modules first with the cyclic garbage collector
    off, then freezes what they made (`gc.freeze`): some 100k objects
    (modules, classes, pydantic models) that live as long as the process.
    Left in the collector's generations, they were walked again and again:
    15 ms of collections in a ``check``, 40 ms in a 1000-request ``run``.
    The price: cyclic garbage those imports leave is never freed (a few
    objects, once). Tests call `main`, which leaves the collector alone:
    their process outlives many runs.
    """
    module = _COMMAND_MODULES.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if module is not None:
        gc.disable()
        try:
            importlib.import_module(module)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            return EXIT_INTERRUPTED
        finally:
            gc.freeze()
            gc.enable()
    return main()
