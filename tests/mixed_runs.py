"""One real run with every kind of outcome, for the tests of the run's sinks.

`mixed_run` writes two suite files into a folder and runs them through
`runner.running.execute` against a `FixtureServer` on 127.0.0.1: in suite
``alpha`` a request passes, one fails (403), one is skipped (it uses the
failed one's capture), one cannot be sent (a closed loopback port) and one
is repeated twice; in suite ``beta`` one passes and one fails a ``that``.
An ``env`` value travels in the URLs, so every sink has a secret to mask.

Used by test_junit.py, test_report.py and test_annotations.py.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

from runner.running import RunOptions, execute
from tests.oauth_servers import FixtureServer, free_port

__all__ = [
    "SECRET_ENV",
    "TRACE_ENV",
    "TRACE_VALUE",
    "MixedRun",
    "line_of",
    "mixed_run",
]

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"
TRACE_ENV = "RUNNER_TEST_TRACE"
TRACE_VALUE = "trace-Kq93-not-for-any-log"

ALPHA = """\
name: alpha
connection: connection.yaml
requests:
  - name: passes
    url: "ok?trace={{{{ env.{trace} }}}}"
  - name: fails
    url: "forbidden?trace={{{{ env.{trace} }}}}"
    expect: {{status: 200}}
    capture: {{flag: response.json.ok}}
  - name: skipped
    url: "items/{{{{ flag }}}}"
  - name: cannot connect
    url: "http://127.0.0.1:{port}/nowhere?trace={{{{ env.{trace} }}}}"
    timeout: 5
  - name: repeated
    url: again
    repeat: 2
"""

BETA = """\
name: beta
connection: connection.yaml
requests:
  - name: first
    url: one
  - name: second
    url: two
    expect:
      that: ["response.json.path == '/api/elsewhere'"]
"""

# In file order, as a report lists them.
ALPHA_CASES = ["passes", "fails", "skipped", "cannot connect", "repeated", "repeated"]
BETA_CASES = ["first", "second"]


@dataclass(frozen=True)
class MixedRun:
    """What a mixed run left behind.

    Attributes:
        status: The exit status.
        out: Standard output.
        err: Standard error.
        folder: Where the suite files are (the current folder of the run).
        alpha: The ``alpha`` suite file.
        beta: The ``beta`` suite file.
        secrets: Every value that must appear nowhere: the client secret,
            the tokens issued, the ``env`` values.
    """

    status: int
    out: str
    err: str
    folder: Path
    alpha: Path
    beta: Path
    secrets: tuple[str, ...]

    def assert_no_secret_in(self, *texts: str | bytes) -> None:
        """Fail if any secret is in any of `texts` (bytes searched as UTF-8)."""
        for text in (self.out, self.err, *texts):
            data = text if isinstance(text, bytes) else text.encode()
            for secret in self.secrets:
                assert secret.encode() not in data, f"{secret[:3]}... leaked"


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` that contains `text`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def mixed_run(
    server: FixtureServer,
    folder: Path,
    *,
    junit: Path | None = None,
    report: Path | None = None,
    github: bool = False,
    workspace: Path | None = None,
) -> MixedRun:
    """Run the two suites over `server`; `folder` must be the current folder."""
    (folder / "connection.yaml").write_text(
        textwrap.dedent(
            f"""\
            url: {server.api_url}
            token_url: {server.token_url}
            client_id: {server.client_id}
            client_secret: "{{{{ env.{SECRET_ENV} }}}}"
            """
        ),
        encoding="utf-8",
    )
    alpha = folder / "alpha.yaml"
    alpha.write_text(ALPHA.format(trace=TRACE_ENV, port=free_port()), "utf-8")
    beta = folder / "beta.yaml"
    beta.write_text(BETA, encoding="utf-8")

    env = {SECRET_ENV: server.client_secret, TRACE_ENV: TRACE_VALUE}
    if github:
        env["GITHUB_ACTIONS"] = "true"
    if workspace is not None:
        env["GITHUB_WORKSPACE"] = str(workspace)
    options = RunOptions(
        paths=[Path("alpha.yaml"), Path("beta.yaml")],
        env=env,
        concurrency=2,
        color=False,
        junit=junit,
        report=report,
    )
    out, err = io.StringIO(), io.StringIO()
    status = execute(options, out=out, err=err)

    secrets = (server.client_secret, TRACE_VALUE, *server.issued)
    return MixedRun(
        status, out.getvalue(), err.getvalue(), folder, alpha, beta, secrets
    )
