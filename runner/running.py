"""``runner run``: load everything, then send the suites and judge the responses.

The order of a run:

1. Load and check every file; any invalid input stops the run with status 2
   before a single byte is sent (token requests included).
2. Open one `ConnectionSession` per connection, shared by every suite that
   uses it, so each connection fetches one token for the whole run.
3. Run the suites on a pool of ``--concurrency`` worker threads; requests of
   a suite run in order in one worker.
4. Print the summary, close every client, write the report files
   (``--junit``, ``--report``), return the exit status.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from runner.annotations import GitHubAnnotations, annotations_wanted
from runner.connections import OAuth2Connection
from runner.errors import InputError, RunnerError, TemplateError
from runner.expectations import ResponseView, evaluate_captures
from runner.loading import (
    LoadedRequest,
    LoadedSuite,
    load_paths,
    parse_var_options,
    read_env_files,
)
from runner.output import (
    Outcome,
    Reporter,
    RunListener,
    RunSummary,
    RunTotals,
    State,
    use_color,
)
from runner.reportfiles import check_output_path
from runner.secrets import Redactor
from runner.sending import ConnectionSession, join_url
from runner.templates import Templates
from runner.tokens import check_token_url

if TYPE_CHECKING:
    from runner.junit import JUnitReport
    from runner.report import JsonReport

__all__ = ["DEFAULT_CONCURRENCY", "RunOptions", "execute", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

# Suites in flight at once unless --concurrency says otherwise: enough to
# hide latency, few enough to be polite to a shared API.
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything a run needs besides its output streams.

    Attributes:
        paths: Files and folders named on the command line.
        env: What templates see as ``env`` (every value read is a secret).
        variables: ``--var`` values.
        concurrency: Suites in flight at once.
        color: True or False, or None to decide from the stream and
            ``NO_COLOR``.
        junit: Where to write the JUnit XML report, if anywhere.
        report: Where to write the JSON report, if anywhere.
    """

    paths: Sequence[Path]
    env: Mapping[str, str] = field(repr=False)
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    color: bool | None = None
    junit: Path | None = None
    report: Path | None = None


def run_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """The ``run`` sub-command: read the options, then `execute`."""
    try:
        env = dict(os.environ)
        env.update(read_env_files(args.env_file))
        variables = parse_var_options(args.variables)
    except InputError as error:
        err.write(f"{error}\n")
        return EXIT_INVALID
    options = RunOptions(
        paths=args.paths,
        env=env,
        variables=variables,
        concurrency=args.concurrency,
        color=False if args.no_color else None,
        junit=args.junit,
        report=args.report,
    )
    return execute(options, out=out, err=err)


def execute(options: RunOptions, *, out: TextIO, err: TextIO) -> int:
    """Load, then run every suite under ``options.paths``; returns the exit status."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    unwritable = [
        problem
        for option, path in (("--junit", options.junit), ("--report", options.report))
        if path is not None and (problem := check_output_path(option, path))
    ]
    if unwritable:
        for problem in unwritable:
            err.write(f"{problem}; nothing was sent\n")
        return EXIT_INVALID

    redactor = Redactor()
    templates = Templates(options.env, redactor)
    loaded = load_paths(
        options.paths,
        env=options.env,
        variables=options.variables,
        redactor=redactor,
        templates=templates,
        for_run=True,
    )
    if loaded.errors:
        for error in loaded.errors:
            err.write(redactor.redact(error.render()) + "\n")
        count = len(loaded.errors)
        err.write(f"{count} error{'s' if count != 1 else ''}; nothing was sent\n")
        return EXIT_INVALID
    if not loaded.suites:
        err.write("no suite files found; nothing was sent\n")
        return EXIT_INVALID

    url_errors = [
        InputError(problem, connection.location)
        for connection in loaded.connections.values()
        if isinstance(connection.model, OAuth2Connection)
        and (problem := check_token_url(connection.model)) is not None
    ]
    if url_errors:
        for error in url_errors:
            err.write(redactor.redact(error.render()) + "\n")
        return EXIT_INVALID

    color = options.color
    if color is None:
        color = use_color(out, no_color=False, environ=options.env)
    reporter = Reporter(out, redactor, color=color)
    listeners: list[RunListener] = [reporter]
    if annotations_wanted(options.env):
        listeners.append(GitHubAnnotations(reporter.message, redactor))
    # The report files' modules are imported only when asked for: every run
    # pays for what it imports (benchmarks/bench_run.py), most want neither.
    files: list[JUnitReport | JsonReport] = []
    if options.junit is not None:
        from runner.junit import JUnitReport

        files.append(JUnitReport(options.junit, redactor, loaded.suites))
    if options.report is not None:
        from runner.report import JsonReport

        files.append(
            JsonReport(options.report, redactor, loaded.suites, started=started_at)
        )
    listeners += files
    for connection in loaded.connections.values():
        if not connection.model.verify_ssl:
            reporter.message(
                f"warning: {connection.name}: verify_ssl is false; TLS certificates "
                "are not checked, the token endpoint's included"
            )

    sessions = {
        key: ConnectionSession(
            connection.model,
            redactor,
            name=connection.name,
            pool_size=options.concurrency,
        )
        for key, connection in loaded.connections.items()
    }
    stop = threading.Event()
    totals = RunTotals()
    run = _SuiteRunner(sessions, templates, _Broadcast(listeners, totals), stop)
    interrupted = False
    pool = ThreadPoolExecutor(
        max_workers=options.concurrency, thread_name_prefix="suite"
    )
    try:
        futures = [pool.submit(run.suite, suite) for suite in loaded.suites]
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        # Workers finish the request in hand (closing the clients below cuts
        # it short) and send nothing more.
        interrupted = True
        stop.set()
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        for session in sessions.values():
            session.close()

    summary = RunSummary(
        suites=len(loaded.suites),
        totals=totals,
        tokens_fetched=sum(session.tokens_fetched for session in sessions.values()),
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
    )
    for listener in listeners:
        listener.finished(summary)
    unwritten = [sink.problem for sink in files if sink.problem is not None]
    for problem in unwritten:
        err.write(redactor.redact(problem) + "\n")
    if interrupted:
        return EXIT_INTERRUPTED
    if unwritten:
        # The requests may all have passed, but a CI job that reads the
        # report would find none: not a success.
        return EXIT_FAILED
    return EXIT_OK if totals.all_passed else EXIT_FAILED


class _Broadcast:
    """Hands each outcome to every listener and counts it, from any thread."""

    def __init__(self, listeners: Sequence[RunListener], totals: RunTotals) -> None:
        self._listeners = listeners
        self._totals = totals
        self._lock = threading.Lock()

    def outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self._totals.add(outcome.state)
        for listener in self._listeners:
            listener.outcome(outcome)


class _SuiteRunner:
    """Runs one suite's requests in order; shared by the worker threads."""

    def __init__(
        self,
        sessions: Mapping[str, ConnectionSession],
        templates: Templates,
        reporter: _Broadcast,
        stop: threading.Event,
    ) -> None:
        self._sessions = sessions
        self._templates = templates
        self._reporter = reporter
        self._stop = stop

    def suite(self, suite: LoadedSuite) -> None:
        captures: dict[str, Any] = {}
        # Which request was meant to capture each name, to explain a skip.
        capturer: dict[str, str] = {}
        for request in suite.requests:
            label = _request_label(request)
            missing = sorted(request.uses - captures.keys())
            if missing or self._stop.is_set():
                reason = (
                    "run interrupted"
                    if not missing
                    else _skip_reason(missing, capturer)
                )
                self._report_skip(suite, request, label, reason)
                continue
            for name in request.captures:
                capturer[name] = label
            self._send_all(suite, request, label, captures)

    def _send_all(
        self,
        suite: LoadedSuite,
        request: LoadedRequest,
        label: str,
        captures: dict[str, Any],
    ) -> None:
        """Send a request `repeat` times; captures come from the last passing send."""
        model = request.model
        for _ in range(model.repeat):
            if model.delay and self._stop.wait(model.delay / 1000):
                return
            outcome, captured = self._send_once(suite, request, label, captures)
            self._reporter.outcome(outcome)
            captures.update(captured)

    def _send_once(
        self,
        suite: LoadedSuite,
        request: LoadedRequest,
        label: str,
        captures: Mapping[str, Any],
    ) -> tuple[Outcome, dict[str, Any]]:
        model = request.model
        session = self._sessions[request.connection.key]
        names = {**suite.variables, **captures}
        url = join_url(session.base_url, model.url)

        def outcome(state: State, *reasons: str, **extra: Any) -> Outcome:
            return Outcome(
                suite=suite.name,
                request=label,
                method=model.method,
                url=url,
                state=state,
                reasons=reasons,
                location=request.location,
                **extra,
            )

        try:
            url = join_url(session.base_url, self._templates.render(model.url, names))
            headers = self._templates.render(model.headers, names)
            params = self._templates.render(model.params, names)
            body = self._templates.render(model.body, names)
        except TemplateError as error:
            return outcome(State.ERROR, f"could not render: {error.message}"), {}

        try:
            sent = session.send(
                method=model.method,
                url=url,
                headers=headers,
                params=params,
                body=body,
                timeout=model.timeout,
                follow_redirects=model.follow_redirects,
            )
        except RunnerError as error:
            return outcome(State.ERROR, str(error)), {}

        response = ResponseView(
            status=sent.status,
            headers=sent.headers,
            text=sent.text,
            elapsed_ms=sent.elapsed_ms,
        )
        timing = {"status": sent.status, "elapsed_ms": sent.elapsed_ms}
        reasons = request.expect.judge(response, names)
        if reasons:
            return outcome(State.FAILED, *reasons, **timing), {}
        try:
            captured = evaluate_captures(request.captures, response, names)
        except TemplateError as error:
            return outcome(State.FAILED, f"capture: {error.message}", **timing), {}
        return outcome(State.PASSED, **timing), captured

    def _report_skip(
        self, suite: LoadedSuite, request: LoadedRequest, label: str, reason: str
    ) -> None:
        model = request.model
        for _ in range(model.repeat):
            self._reporter.outcome(
                Outcome(
                    suite=suite.name,
                    request=label,
                    method=model.method,
                    url=model.url,
                    state=State.SKIPPED,
                    reasons=(reason,),
                    location=request.location,
                )
            )


def _request_label(request: LoadedRequest) -> str:
    model = request.model
    return model.name or f"{model.method} {model.url or '/'}"


def _skip_reason(missing: Sequence[str], capturer: Mapping[str, str]) -> str:
    names = ", ".join(repr(name) for name in missing)
    makers = sorted({capturer[name] for name in missing if name in capturer})
    if makers:
        return f"uses {names}, not captured: {', '.join(makers)} did not pass"
    return f"uses {names}, which no earlier request captured"
