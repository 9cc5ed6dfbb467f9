"""`runner.cli.console`, the process entry point: `main` plus start-up tuning.

`console` changes process-wide collector state, so it is only ever called in
a child process here; `test_check_command.py` and `test_run_command.py` test
the commands themselves through `main`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs `console` as the ``runner`` script would, then reports on the process.
PROBE = """
import gc, sys
sys.argv = ["runner", *sys.argv[1:]]
from runner.cli import console
status = console()
assert gc.isenabled(), "the collector was left off"
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
assert "httpx" not in sys.modules or sys.argv[1] != "check"
sys.exit(status)
"""


def run_probe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_check_freezes_start_up_objects_collector_stays_on() -> None:
    completed = run_probe("check", "examples")

    assert completed.returncode == 0, completed.stderr
    assert "all valid" in completed.stdout


def test_console_usage_error_exits_2_without_a_traceback() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "runner", "nonsense"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "invalid choice" in completed.stderr


def test_console_without_a_command_prints_usage_and_exits_2() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "runner"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert "usage: runner" in completed.stderr
