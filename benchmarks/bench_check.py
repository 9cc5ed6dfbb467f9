"""Time ``runner check examples/`` as a whole process, against a bare interpreter.

``check`` runs in pre-commit hooks and editors, so what matters is the wall
time of a fresh process: interpreter start-up, imports, then the checking.
Both commands run alternately in the same session, so that the machine's
state affects them alike, and the medians are compared.

Target (issue 2): ``check`` within 0.25 s of ``python -c pass``.

The commands run as an installed package does, with its bytecode written
(``PYTHONDONTWRITEBYTECODE`` is removed from their environment): otherwise
every run would compile the project's modules again. A third line times
importing the dependencies alone, the part of the difference that is not
the project's own.

Usage::

    python benchmarks/bench_check.py [--runs N] [PATH ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.25


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
DEPENDENCIES = (
    "import pydantic.main, pydantic.networks, pydantic.types, jsonschema, "
    "jinja2.sandbox, yaml"
)


def _time(command: Sequence[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        output = completed.stdout.decode() + completed.stderr.decode()
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("paths", nargs="*", default=["examples"])
    args = parser.parse_args(argv)

    floor_command = [sys.executable, "-c", "pass"]
    check_command = [sys.executable, "-m", "runner", "check", *args.paths]
    dependencies_command = [sys.executable, "-c", DEPENDENCIES]
    _time(check_command)  # warm the file system cache and write the bytecode
    floors: list[float] = []
    checks: list[float] = []
    dependencies: list[float] = []
    for _ in range(args.runs):
        floors.append(_time(floor_command))
        checks.append(_time(check_command))
        dependencies.append(_time(dependencies_command))

    floor = statistics.median(floors)
    check = statistics.median(checks)
    imports = statistics.median(dependencies)
    difference = check - floor
    verdict = "within" if difference <= TARGET_SECONDS else "OVER"
    label = f"runner check {' '.join(args.paths)}"
    rows = [
        ("python -c pass", floor),
        (label, check),
        ("dependencies only", imports),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{args.runs} runs each, medians:")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds * 1000:7.1f} ms")
    print(
        f"check - floor: {difference * 1000:.1f} ms ({verdict} the "
        f"{TARGET_SECONDS * 1000:.0f} ms target); ratio {check / floor:.1f}x; "
        f"the project's own share {(check - imports) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
