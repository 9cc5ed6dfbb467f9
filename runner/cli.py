"""The command line: ``runner run|check|schema|demo|docs``.

`main` takes its arguments and streams as parameters and returns the exit
status, so tests call it directly. Each command's module is imported only
when that command runs: `check` must not pay for httpx.

Exit statuses are those of `runner.exits.ExitStatus`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from runner.exits import ExitStatus

__all__ = ["console", "main"]

# The module each command imports, for `console` to import it up front.
_COMMAND_MODULES = {
    "run": "runner.running",
    "check": "runner.checking",
    "demo": "runner.demo",
    "schema": "runner.schema",
    "docs": "runner.reference",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with our exit status, not a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.INVALID, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        message = f"expected a whole number from 1 to 1024, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _tag(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a tag, got an empty string")
    return text


def _shard(text: str) -> object:
    # Imported here, like every command's module: `check` pays for nothing.
    from runner.selection import Shard

    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_inputs(command: argparse.ArgumentParser, paths_help: str) -> None:
    """The inputs `run` and `check` share: paths, env files, variables."""
    command.add_argument("paths", nargs="+", metavar="PATH", type=Path, help=paths_help)
    command.add_argument(
        "--env-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="NAME=VALUE lines added to what templates see as env (repeatable)",
    )
    command.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="variables",
        help="a value for templates, over the suites' vars (repeatable)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runner",
        description="Send declarative HTTP request suites and judge the responses.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="send the suites")
    _add_inputs(run, "the suite files to send, and folders of them")
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="suites in flight at once (default 4)",
    )
    run.add_argument(
        "--junit", type=Path, default=None, metavar="FILE", help="write JUnit XML"
    )
    run.add_argument(
        "--report", type=Path, default=None, metavar="FILE", help="write a JSON report"
    )
    run.add_argument("--no-color", action="store_true", help="never use colour")
    run.add_argument(
        "--tag",
        type=_tag,
        action="append",
        default=[],
        metavar="TAG",
        dest="tags",
        help="run only suites or requests with this tag (repeatable)",
    )
    run.add_argument(
        "--fail-fast",
        action="store_true",
        help="send nothing more after the first failure; report the rest skipped",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="run the K-th of N disjoint parts of the suite files (CI jobs)",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show each request and response, masked (-vv: token requests too)",
    )
    run.add_argument(
        "--token-cache",
        action="store_true",
        help="keep OAuth2 tokens on disk until shortly before they expire",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print each request as a curl command, masked; send nothing",
    )

    check = commands.add_parser("check", help="validate and render, send nothing")
    _add_inputs(check, "the files to check, and folders of them")

    schema = commands.add_parser("schema", help="write the JSON Schemas")
    schema.add_argument("--check", action="store_true", help="fail if they differ")
    schema.add_argument(
        "--output", type=Path, default=Path("schemas"), help="(default: schemas/)"
    )

    demo = commands.add_parser("demo", help="run examples/ against a local demo API")
    demo.add_argument(
        "--examples", type=Path, default=None, help="(default: the checkout's)"
    )
    demo.add_argument("--no-color", action="store_true", help="never use colour")

    docs = commands.add_parser("docs", help="write the connection types' reference")
    docs.add_argument("--check", action="store_true", help="fail if it differs")
    docs.add_argument(
        "--output",
        type=Path,
        default=Path("docs/connections.md"),
        help="(default: docs/connections.md)",
    )
    return parser


def _schema_command(args: argparse.Namespace, out: TextIO) -> int:
    from runner.schema import export_schemas

    differing = export_schemas(args.output, check=args.check)
    if args.check:
        for path in differing:
            out.write(f"{path}: differs from the models; run `runner schema`\n")
        return ExitStatus.FAILED if differing else ExitStatus.OK
    for path in differing:
        out.write(f"wrote {path}\n")
    if not differing:
        out.write("schemas are up to date\n")
    return ExitStatus.OK


def _docs_command(args: argparse.Namespace, out: TextIO) -> int:
    from runner.reference import export_reference

    differs = export_reference(args.output, check=args.check)
    if args.check:
        if differs:
            problem = "differs from the models" if args.output.is_file() else "missing"
            out.write(f"{args.output}: {problem}; run `runner docs`\n")
        return ExitStatus.FAILED if differs else ExitStatus.OK
    out.write(f"wrote {args.output}\n" if differs else "reference is up to date\n")
    return ExitStatus.OK


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
        if args.command == "docs":
            return _docs_command(args, out)
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
        return ExitStatus.INTERRUPTED
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
            return ExitStatus.INTERRUPTED
        finally:
            gc.freeze()
            gc.enable()
    return main()
