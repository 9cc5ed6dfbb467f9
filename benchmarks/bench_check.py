"""Time ``runner check examples/`` as a whole process, against a bare interpreter.

``check`` runs in pre-commit hooks and editors, so what matters is the wall
time of a fresh process: interpreter start-up, imports, then the checking.
Both commands run alternately in the same session, so that the machine's
state affects them alike, and the medians are compared.

Target (issue 2): ``check`` within 0.25 s of ``python -c pass``.

Usage::

    python benchmarks/bench_check.py [--runs N] [PATH ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.25


def _time(command: Sequence[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
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
    _time(check_command)  # warm the file system cache and the bytecode
    floors: list[float] = []
    checks: list[float] = []
    for _ in range(args.runs):
        floors.append(_time(floor_command))
        checks.append(_time(check_command))

    floor = statistics.median(floors)
    check = statistics.median(checks)
    difference = check - floor
    verdict = "within" if difference <= TARGET_SECONDS else "OVER"
    print(f"runs:                 {args.runs}")
    print(f"python -c pass:       {floor * 1000:7.1f} ms (median)")
    print(f"runner check {' '.join(args.paths)}: {check * 1000:7.1f} ms (median)")
    print(f"difference:           {difference * 1000:7.1f} ms ({verdict} the "
          f"{TARGET_SECONDS * 1000:.0f} ms target)")
    print(f"ratio:                {check / floor:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
