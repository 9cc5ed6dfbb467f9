"""Benchmarks of ``runner run``, each against a baseline measured in the same run.

    python benchmarks/bench_run.py [--rounds 5]

(a) 1000 sequential GETs through one OAuth2 connection: ``runner run`` as a
    whole process, against a plain script sending the same requests with a
    bare ``httpx.Client`` (the floor for any httpx tool). Target: 1.3x.
(b) 100 suites of 10 requests with ``--concurrency 16``: requests per second
    and tokens fetched (exactly 1).
(c) A 5-request suite as a whole process, against ``python -c pass``.
    Target: within 0.35 s.

Every server is the embedded demo API on 127.0.0.1, started and stopped here.
Ratios, not absolute times, are what to compare across machines. The
commands run as an installed package does, with its bytecode written
(``PYTHONDONTWRITEBYTECODE`` is removed from their environment), after one
untimed warm-up round; a last line times the imports alone.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from runner.demo.server import DemoServer

PLAIN_SCRIPT = """
import sys, httpx
from urllib.parse import quote_plus
api, token_url, client_id, secret, count = sys.argv[1:6]
with httpx.Client() as client:
    token = client.post(
        token_url,
        data={"grant_type": "client_credentials"},
        auth=(quote_plus(client_id), quote_plus(secret)),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(int(count)):
        response = client.get(api + "/health", headers=headers)
        assert response.status_code == 200, response.status_code
"""


# What a run imports before it sends anything: the project and its
# dependencies (pydantic, jsonschema, jinja2, PyYAML, httpx).
IMPORTS = "import runner.running, runner.cli"


def _connection_yaml(server: DemoServer) -> str:
    return textwrap.dedent(
        f"""\
        url: {server.api_url}
        token_url: {server.token_url}
        client_id: {server.client_id}
        client_secret: "{{{{ env.BENCH_SECRET }}}}"
        """
    )


def _suite_yaml(name: str, requests: int, repeat: int = 1) -> str:
    lines = [f"name: {name}", "connection: connection.yaml", "requests:"]
    for index in range(requests):
        lines += [
            f"  - name: health {index}",
            "    url: health",
            f"    repeat: {repeat}",
            "    expect: {status: 200, json: {status: ok}}",
        ]
    return "\n".join(lines) + "\n"


def _timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 50))
    runner = [sys.executable, "-m", "runner", "run", "--no-color"]

    with (
        DemoServer(token_lifetime=3600) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "BENCH_SECRET": server.client_secret,
        }
        (folder / "connection.yaml").write_text(_connection_yaml(server))
        (folder / "sequential.yaml").write_text(_suite_yaml("sequential", 1, 1000))
        (folder / "smoke.yaml").write_text(_suite_yaml("smoke", 5))
        many = folder / "many"
        many.mkdir()
        (many / "connection.yaml").write_text(_connection_yaml(server))
        for index in range(100):
            (many / f"suite{index:03}.yaml").write_text(_suite_yaml(f"s{index}", 10))
        plain = [
            sys.executable,
            "-c",
            PLAIN_SCRIPT,
            server.api_url,
            server.token_url,
            server.client_id,
            server.client_secret,
            "1000",
        ]

        seq_runner: list[float] = []
        seq_plain: list[float] = []
        smoke: list[float] = []
        floor: list[float] = []
        many_times: list[float] = []
        many_tokens: set[int] = set()
        imports: list[float] = []
        imports_floor: list[float] = []
        # Interleaved, so that a noisy neighbour slows both sides alike; the
        # first round only warms up (bytecode, file cache) and is not kept.
        for round_number in range(rounds + 1):
            if round_number == 1:
                for series in (seq_runner, seq_plain, smoke, floor, many_times):
                    series.clear()
                imports.clear()
                imports_floor.clear()
            imports.append(_timed([sys.executable, "-c", IMPORTS], env)[0])
            imports_floor.append(_timed([sys.executable, "-c", "import httpx"], env)[0])
            seq_plain.append(_timed(plain, env)[0])
            seq_runner.append(
                _timed([*runner, str(folder / "sequential.yaml")], env)[0]
            )
            floor.append(_timed([sys.executable, "-c", "pass"], env)[0])
            smoke.append(_timed([*runner, str(folder / "smoke.yaml")], env)[0])
            command = [*runner, "--concurrency", "16", str(many)]
            elapsed, output = _timed(command, env)
            many_times.append(elapsed)
            found = re.search(r"(\d+) tokens? fetched", output)
            many_tokens.add(int(found.group(1)) if found else -1)

    rows = [
        ("(a) 1000 GETs, runner run", _median(seq_runner), ""),
        ("(a) 1000 GETs, plain httpx script", _median(seq_plain), ""),
        (
            "(a) ratio runner / plain (target <= 1.3)",
            None,
            f"{_median(seq_runner) / _median(seq_plain):.2f}x",
        ),
        (
            "(b) 100 suites x 10, --concurrency 16",
            _median(many_times),
            f"{1000 / _median(many_times):.0f} req/s, tokens {sorted(many_tokens)}",
        ),
        ("(c) 5-request suite, runner run", _median(smoke), ""),
        ("(c) python -c pass", _median(floor), ""),
        (
            "(c) difference (target <= 0.35 s)",
            None,
            f"{_median(smoke) - _median(floor):+.3f} s",
        ),
        ("import runner.running (all it needs)", _median(imports), ""),
        ("import httpx (the plain script's)", _median(imports_floor), ""),
    ]
    print(f"median of {rounds} rounds, whole processes")
    for label, seconds, note in rows:
        shown = f"{seconds:7.3f} s" if seconds is not None else " " * 9
        print(f"{label:<44} {shown}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
