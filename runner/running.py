"""``runner run``: load everything, then send the suites and judge the responses.

The order of a run:

1. Load and check every file; any invalid input stops the run with status 2
   before a single byte is sent (token requests included).
2. Pick what runs (`runner.selection`): ``--tag`` over every suite loaded,
   so a tag that selects nothing is an error in every shard, then
   ``--shard`` over the suite files picked.
3. Open one `ConnectionSession` per connection, shared by every suite that
   uses it, so each connection fetches one token for the whole run.
4. Run the suites on a pool of ``--concurrency`` worker threads; requests of
   a suite run in order in one worker. An interrupt or ``--fail-fast`` sets
   the run's `RunStop`: nothing more is sent, the rest is reported skipped.
5. Print the summary, close every client, write the report files
   (``--junit``, ``--report``), return the exit status.

With ``--dry-run`` the run stops after step 2 and prints each request as a
curl command (`runner.dryrun`); with ``-v`` every send is traced
(`runner.trace`).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner.annotations import GitHubAnnotations, annotations_wanted
from runner.connections import OAuth2Connection
from runner.errors import InputError
from runner.exchange import RequestSender, SuiteProgress, skipped_outcomes
from runner.loading import (
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
    TextSink,
    use_color,
)
from runner.progress import LiveCount, use_progress
from runner.reportfiles import check_output_path
from runner.secrets import Redactor, masked_logs
from runner.selection import Selected, Shard, select
from runner.sending import ConnectionSession
from runner.stopping import FailFast, RunStop
from runner.templates import Templates
from runner.tokens import check_token_url
from runner.trace import Tracer
from runner.validation import did_you_mean

if TYPE_CHECKING:
    from runner.junit import JUnitReport
    from runner.report import JsonReport
    from runner.token_cache import TokenCache

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
        tags: ``--tag`` values; empty runs every request.
        fail_fast: Send nothing more after the first failed or errored
            request; the rest is reported as skipped.
        shard: ``--shard K/N``: run only this part of the suite files.
        progress: Show a live count of finished and pending requests: True
            or False, or None to decide from the stream (a terminal).
        verbosity: 1 traces every request and response (``-v``), 2 the
            token requests too (``-vv``); 0 neither.
        dry_run: Print each request as a curl command and send nothing.
        junit: Where to write the JUnit XML report, if anywhere.
        report: Where to write the JSON report, if anywhere.
        token_cache: Reuse OAuth2 tokens of earlier runs, and keep this
            run's for later ones (`runner.token_cache`).
    """

    paths: Sequence[Path]
    env: Mapping[str, str] = field(repr=False)
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    color: bool | None = None
    tags: Sequence[str] = ()
    fail_fast: bool = False
    shard: Shard | None = None
    progress: bool | None = None
    verbosity: int = 0
    dry_run: bool = False
    junit: Path | None = None
    report: Path | None = None
    token_cache: bool = False


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
        tags=tuple(args.tags),
        fail_fast=args.fail_fast,
        shard=args.shard,
        verbosity=args.verbose,
        dry_run=args.dry_run,
        junit=args.junit,
        report=args.report,
        token_cache=args.token_cache,
    )
    return execute(options, out=out, err=err)


def execute(options: RunOptions, *, out: TextIO, err: TextIO) -> int:
    """Load, then run every suite under ``options.paths``; returns the exit status."""
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
    # The logs of the run and its dependencies are a sink like the others.
    with masked_logs(redactor):
        return _execute(options, redactor, out=out, err=err)


def _execute(
    options: RunOptions, redactor: Redactor, *, out: TextIO, err: TextIO
) -> int:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
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
    selection = select(loaded.suites, options.tags)
    if not selection.suites:
        err.write(_nothing_tagged(options.tags, loaded.suites) + "\n")
        return EXIT_INVALID
    suites = list(selection.suites)
    if options.shard is not None:
        suites = options.shard.pick(suites, cwd=Path.cwd())
        if not suites:
            # Normal in CI when there are more jobs than suite files.
            out.write(
                f"shard {options.shard}: none of the {len(selection.suites)} suite "
                "files falls in this shard; nothing to send\n"
            )
            return EXIT_OK
    if options.dry_run:
        from runner.dryrun import dry_run

        return dry_run(suites, templates, redactor, out=out, err=err)

    stop = RunStop()
    sinks = _Sinks.build(options, out, redactor, stop, suites, started_at=started_at)
    reporter, listeners, live = sinks.reporter, sinks.listeners, sinks.live
    files = sinks.files
    if options.shard is not None:
        reporter.message(
            f"shard {options.shard}: {len(suites)} of {len(selection.suites)} "
            "suite files"
        )
    for connection in loaded.connections.values():
        if not connection.model.verify_ssl:
            reporter.message(
                f"warning: {connection.name}: verify_ssl is false; TLS certificates "
                "are not checked, the token endpoint's included"
            )

    tracer = None
    if options.verbosity > 0:
        # Through the reporter, whose lock keeps each block in one piece.
        tracer = Tracer(reporter.message, redactor, tokens=options.verbosity > 1)
    token_cache = _open_token_cache(options, reporter) if options.token_cache else None
    sessions = {
        key: ConnectionSession(
            connection.model,
            redactor,
            name=connection.name,
            pool_size=options.concurrency,
            tracer=tracer,
            token_cache=token_cache,
        )
        for key, connection in loaded.connections.items()
    }
    totals = RunTotals()
    run = _SuiteRunner(sessions, templates, _Broadcast(listeners, totals), stop)
    interrupted = False
    pool = ThreadPoolExecutor(
        max_workers=options.concurrency, thread_name_prefix="suite"
    )
    try:
        if live is not None:
            live.start()
        futures: list[Future[None]] = [pool.submit(run.suite, item) for item in suites]
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        # Workers finish the request in hand (closing the clients below cuts
        # it short) and send nothing more.
        interrupted = True
        stop.stop("run interrupted")
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        for session in sessions.values():
            session.close()
        if live is not None:
            live.close()

    # Under --shard, requests of suites that --tag left out entirely belong
    # to no shard, so each shard counts only those of its own suites.
    deselected = selection.deselected
    if options.shard is not None:
        deselected = sum(item.deselected for item in suites)
    summary = RunSummary(
        suites=len(suites),
        totals=totals,
        tokens_fetched=sum(session.tokens_fetched for session in sessions.values()),
        token_requests=sum(session.token_requests for session in sessions.values()),
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        deselected=deselected,
        tokens_from_cache=sum(item.tokens_from_cache for item in sessions.values()),
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


def _open_token_cache(options: RunOptions, reporter: Reporter) -> TokenCache | None:
    """The token cache of ``--token-cache``, or None (with a warning) if unusable."""
    # Imported here: a run without the cache does not pay for it.
    from runner.token_cache import TokenCache

    def warn(message: str) -> None:
        reporter.message(f"warning: {message}")

    return TokenCache.open(environ=options.env, warn=warn)


@dataclass(frozen=True, slots=True)
class _Sinks:
    """Where a run's outcomes go, in the order each must see them."""

    reporter: Reporter
    listeners: Sequence[RunListener]
    live: LiveCount | None  # the progress line, on a terminal
    files: Sequence[JUnitReport | JsonReport]  # written when the run ends

    @classmethod
    def build(
        cls,
        options: RunOptions,
        out: TextIO,
        redactor: Redactor,
        stop: RunStop,
        suites: Sequence[Selected],
        *,
        started_at: datetime,
    ) -> _Sinks:
        color = options.color
        if color is None:
            color = use_color(out, no_color=False, environ=options.env)
        progress = options.progress
        if progress is None:
            progress = use_progress(out, environ=options.env)

        listeners: list[RunListener] = []
        sink: TextSink = out
        live: LiveCount | None = None
        if progress:
            # First, so the count is current when the reporter's line lands.
            live = LiveCount(out, sum(item.sends for item in suites))
            listeners.append(live)
            sink = live
        if options.fail_fast:
            listeners.append(FailFast(stop))
        reporter = Reporter(sink, redactor, color=color)
        listeners.append(reporter)
        if annotations_wanted(options.env):
            listeners.append(GitHubAnnotations(reporter.message, redactor))

        # The report files' modules are imported only when asked for: every
        # run pays for what it imports (benchmarks/bench_run.py).
        loaded = [item.suite for item in suites]
        files: list[JUnitReport | JsonReport] = []
        if options.junit is not None:
            from runner.junit import JUnitReport

            files.append(JUnitReport(options.junit, redactor, loaded))
        if options.report is not None:
            from runner.report import JsonReport

            files.append(
                JsonReport(options.report, redactor, loaded, started=started_at)
            )
        listeners += files
        return cls(reporter, listeners, live, files)


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
        stop: RunStop,
    ) -> None:
        self._sender = RequestSender(sessions, templates, stop)
        self._reporter = reporter
        self._stop = stop

    def suite(self, selected: Selected) -> None:
        suite = selected.suite
        progress = SuiteProgress(not_selected="not selected by --tag")
        for request in suite.requests:
            if not selected.runs(request):
                # Not sent and not reported; only its captures are missed.
                progress.left_out(request)
                continue
            reason = progress.skip_reason(request)
            if reason is None and self._stop.is_set():
                reason = self._stop.reason
            if reason is not None:
                for outcome in skipped_outcomes(suite, request, reason):
                    self._reporter.outcome(outcome)
                continue
            progress.sending(request)
            self._sender.send(suite, request, progress.captures, self._reporter.outcome)


def _nothing_tagged(tags: Sequence[str], suites: Sequence[LoadedSuite]) -> str:
    """The error for ``--tag`` values that select no request at all."""
    known = {tag for suite in suites for tag in suite.tags}
    for suite in suites:
        known.update(tag for request in suite.requests for tag in request.model.tags)
    shown = ", ".join(repr(tag) for tag in tags)
    hint = did_you_mean(tags[0], known) if len(tags) == 1 else ""
    count = len(suites)
    return (
        f"--tag {shown}: selects no request of the {count} suite"
        f"{'' if count == 1 else 's'} loaded{hint}; nothing was sent"
    )
