"""``runner run``: load everything, then send the suites and judge the responses.

The order of a run, one function per step in `_execute`:

1. Load and check every file; any invalid input stops the run with status 2
   before a single byte is sent (token requests included).
2. Pick what runs (`runner.selection`): ``--tag`` over every suite loaded,
   so a tag that selects nothing is an error in every shard, then
   ``--shard`` over the suite files picked. A shard left with no file
   writes empty report files and sends nothing.
3. Open one `ConnectionSession` per connection, shared by every suite that
   uses it, so each connection fetches one token for the whole run.
4. Run the suites on ``--concurrency`` worker threads (`runner.workers`);
   requests of a suite run in order in one worker. An interrupt or
   ``--fail-fast`` sets the run's `RunStop`: nothing more is sent, the rest
   is reported skipped. After an interrupt the workers get a moment to
   report what they have in hand; every send still without an outcome is
   then reported skipped, and a worker stuck in a send is left behind.
5. Close every client, print the summary, write the report files (the
   JUnit file first, then the JSON report), return the exit status
   (`runner.exits`), which the summary carries for the JSON report.

With ``--dry-run`` the run stops after step 2 and prints each request as a
curl command (`runner.dryrun`); with ``-v`` every send is traced
(`runner.trace`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from runner.annotations import GitHubAnnotations, annotations_wanted, workspace
from runner.errors import InputError
from runner.exchange import RequestSender, SuiteProgress, skipped_outcomes
from runner.exits import ExitStatus
from runner.loading import (
    LoadedSuite,
    LoadResult,
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
from runner.preflight import tls_warnings, unsafe_token_urls
from runner.progress import LiveCount, use_progress
from runner.reportfiles import check_output_path
from runner.secrets import Redactor, masked_logs
from runner.selection import Selected, Shard, select
from runner.sending import ConnectionSession
from runner.stopping import FailFast, RunStop
from runner.templates import Templates
from runner.trace import Tracer
from runner.validation import did_you_mean
from runner.workers import Workers

if TYPE_CHECKING:
    from runner.token_cache import TokenCache

__all__ = [
    "DEFAULT_CONCURRENCY",
    "GRACE_SECONDS",
    "INTERRUPTED_REASON",
    "RunOptions",
    "execute",
    "run_command",
]

# Suites in flight at once unless --concurrency says otherwise: enough to
# hide latency, few enough to be polite to a shared API.
DEFAULT_CONCURRENCY = 4

# After Ctrl-C, how long the workers have to report the request in hand
# before the run ends without them.
GRACE_SECONDS = 1.0

# The skip reason of every send an interrupt prevented.
INTERRUPTED_REASON = "run interrupted"


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
        return ExitStatus.INVALID
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
    """Load, then run every suite under ``options.paths``; returns the exit status.

    It returns soon after an interrupt (Ctrl-C) even when a worker thread is
    still blocked in a send: that worker is left behind (a daemon thread,
    `runner.workers`) and whatever it reports later is dropped.

    Known shortcoming: log records such a worker makes after `execute` has
    returned are no longer masked (`masked_logs` ends with the run). The
    ``runner`` process has exited by then; only a caller in the same
    process, a test say, can see them.
    """
    refused = _refused_outputs(options)
    if refused:
        for problem in refused:
            err.write(f"{problem}; nothing was sent\n")
        return ExitStatus.INVALID

    redactor = Redactor()
    # The logs of the run and its dependencies are a sink like the others.
    with masked_logs(redactor):
        return _execute(options, redactor, out=out, err=err)


def _refused_outputs(options: RunOptions) -> list[str]:
    """Why the report files cannot be written where the options say."""
    junit, report = options.junit, options.report
    problems = [
        problem
        for option, path in (("--junit", junit), ("--report", report))
        if path is not None and (problem := check_output_path(option, path))
    ]
    # One would overwrite the other; resolve() also sees through symlinks.
    if junit is not None and report is not None and junit.resolve() == report.resolve():
        problems.append(
            f"--junit {junit} and --report {report}: the same file; "
            "each report needs its own"
        )
    return problems


def _execute(
    options: RunOptions, redactor: Redactor, *, out: TextIO, err: TextIO
) -> int:
    start = _Start.now()
    templates = Templates(options.env, redactor)
    loaded = _load_and_check(options, redactor, templates, err)
    if loaded is None:
        return ExitStatus.INVALID
    plan = _select_and_shard(options, loaded, err)
    if plan is None:
        return ExitStatus.INVALID
    if not plan.suites:
        return _empty_shard(options, plan, redactor, start, out=out, err=err)
    if options.dry_run:
        from runner.dryrun import dry_run

        return dry_run(plan.suites, templates, redactor, out=out, err=err)

    stop = RunStop()
    sinks = _Sinks.build(options, out, redactor, stop, plan.suites, start=start)
    _announce(options, plan, sinks.reporter)
    broadcast = _Broadcast(sinks.every, sinks.reporter)
    sessions = _open_sessions(options, plan, redactor, broadcast, stop)
    try:
        run = _SuiteRunner(sessions, templates, broadcast, stop)
        interrupted = _run_suites(run, plan.suites, options.concurrency, sinks.live)
        # Every picked send has an outcome from here on, and nothing that a
        # worker still stuck in a send reports later is shown.
        broadcast.close(unfinished=plan.suites if interrupted else ())
    finally:
        for session in sessions.values():
            session.close()
        if sinks.live is not None:
            sinks.live.close()
    return _finish(plan, sessions, sinks, broadcast.totals, start, interrupted, err)


@dataclass(frozen=True, slots=True)
class _Start:
    """When the run started: for its wall time, and for the report's clock."""

    counter: float  # time.perf_counter()
    at: datetime  # aware, UTC

    @classmethod
    def now(cls) -> _Start:
        return cls(time.perf_counter(), datetime.now(UTC))

    def seconds(self) -> float:
        return time.perf_counter() - self.counter


@dataclass(frozen=True, slots=True)
class _Plan:
    """What this run sends, with what it needs to say about the rest.

    Attributes:
        loaded: Every file loaded.
        suites: The suites of this shard that ``--tag`` picked.
        picked: How many suites ``--tag`` picked, in every shard.
        deselected: Requests (as written) that ``--tag`` left out here.
    """

    loaded: LoadResult
    suites: list[Selected]
    picked: int
    deselected: int


def _load_and_check(
    options: RunOptions, redactor: Redactor, templates: Templates, err: TextIO
) -> LoadResult | None:
    """Every file loaded and checked, or None once the errors are written."""
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
        return None
    if not loaded.suites:
        err.write("no suite files found; nothing was sent\n")
        return None

    url_errors = unsafe_token_urls(loaded.connections.values())
    for error in url_errors:
        err.write(redactor.redact(error.render()) + "\n")
    return None if url_errors else loaded


def _select_and_shard(
    options: RunOptions, loaded: LoadResult, err: TextIO
) -> _Plan | None:
    """What ``--tag`` and ``--shard`` leave to send, or None if ``--tag`` picks nothing.

    The tags pick over every suite loaded, so a tag that selects nothing is
    an error in every shard; an empty shard is not (see `_empty_shard`).
    """
    selection = select(loaded.suites, options.tags)
    if not selection.suites:
        err.write(_nothing_tagged(options.tags, loaded.suites) + "\n")
        return None
    if options.shard is None:
        suites = list(selection.suites)
        return _Plan(loaded, suites, len(suites), selection.deselected)

    suites = options.shard.pick(selection.suites, cwd=Path.cwd())
    # Requests of suites that --tag left out entirely belong to no shard,
    # so each shard counts only those of its own suites.
    deselected = sum(item.deselected for item in suites)
    return _Plan(loaded, suites, len(selection.suites), deselected)


def _empty_shard(
    options: RunOptions,
    plan: _Plan,
    redactor: Redactor,
    start: _Start,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """A shard with no suite file: say so, and write empty report files.

    Normal in CI when there are more jobs than suite files; the job's upload
    step still finds the files it was told to expect.
    """
    out.write(
        f"shard {options.shard}: none of the {plan.picked} suite files falls in "
        "this shard; nothing to send\n"
    )
    if options.dry_run:
        return ExitStatus.OK
    files = _report_files(options, redactor, (), start=start)
    summary = RunSummary(
        suites=0, totals=RunTotals(), tokens_fetched=0, seconds=start.seconds()
    )
    return _write_files(files, summary, redactor, err)


def _announce(options: RunOptions, plan: _Plan, reporter: Reporter) -> None:
    """The lines before the first request: the shard, TLS checks turned off."""
    if options.shard is not None:
        reporter.message(
            f"shard {options.shard}: {len(plan.suites)} of {plan.picked} suite files"
        )
    for warning in tls_warnings(plan.loaded.connections.values()):
        reporter.message(f"warning: {warning}")


def _open_sessions(
    options: RunOptions,
    plan: _Plan,
    redactor: Redactor,
    broadcast: _Broadcast,
    stop: RunStop,
) -> dict[str, ConnectionSession]:
    """One session per connection, shared by every suite that uses it."""
    tracer = None
    if options.verbosity > 0:
        # Through the broadcast, which keeps each block in one piece and
        # drops those of a worker left behind after an interrupt.
        tracer = Tracer(broadcast.message, redactor, tokens=options.verbosity > 1)
    token_cache = None
    if options.token_cache:
        token_cache = _open_token_cache(options, broadcast.message)
    return {
        key: ConnectionSession(
            connection.model,
            redactor,
            name=connection.name,
            pool_size=options.concurrency,
            tracer=tracer,
            token_cache=token_cache,
            stop=stop,
        )
        for key, connection in plan.loaded.connections.items()
    }


def _run_suites(
    run: _SuiteRunner,
    suites: Sequence[Selected],
    concurrency: int,
    live: LiveCount | None,
) -> bool:
    """Run the suites on ``concurrency`` workers; True if Ctrl-C cut the run short.

    After Ctrl-C nothing more is sent; the workers get `GRACE_SECONDS` to
    report what they have in hand (delays and retry waits end at once). A
    worker blocked in a send is left behind: closing its client does not
    wake a thread waiting for a response, and waiting for its timeout could
    take minutes.
    """
    workers = Workers(run.suite, enumerate(suites), count=concurrency, name="suite")
    try:
        if live is not None:
            live.start()
        workers.start()
        workers.wait()
    except KeyboardInterrupt:
        run.stop.stop(INTERRUPTED_REASON)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: no waiting
            workers.wait(GRACE_SECONDS)
        return True
    return False


def _finish(
    plan: _Plan,
    sessions: Mapping[str, ConnectionSession],
    sinks: _Sinks,
    totals: RunTotals,
    start: _Start,
    interrupted: bool,
    err: TextIO,
) -> int:
    """Print the summary, write the report files; returns the exit status."""
    sent = sessions.values()
    summary = RunSummary(
        suites=len(plan.suites),
        totals=totals,
        tokens_fetched=sum(session.tokens_fetched for session in sent),
        token_requests=sum(session.token_requests for session in sent),
        seconds=start.seconds(),
        interrupted=interrupted,
        deselected=plan.deselected,
        tokens_from_cache=sum(session.tokens_from_cache for session in sent),
        exit_status=_exit_status(totals, interrupted=interrupted),
    )
    for listener in sinks.listeners:
        listener.finished(summary)
    return _write_files(sinks.files, summary, sinks.redactor, err)


def _exit_status(totals: RunTotals, *, interrupted: bool) -> ExitStatus:
    """The status of a run whose report files are all written."""
    if interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if totals.all_passed else ExitStatus.FAILED


def _write_files(
    files: Sequence[_ReportFile], summary: RunSummary, redactor: Redactor, err: TextIO
) -> int:
    """Write the report files in order; returns the run's final exit status.

    A file that cannot be written makes a run that passed exit 1: a CI job
    that reads the report would find none, which is not a success. The
    JUnit file comes first, so the JSON report's ``exit_status`` already
    counts a JUnit file that could not be written.
    """
    for sink in files:
        sink.finished(summary)
        if sink.problem is None:
            continue
        err.write(redactor.redact(sink.problem) + "\n")
        if summary.exit_status == ExitStatus.OK:
            summary = replace(summary, exit_status=ExitStatus.FAILED)
    return summary.exit_status


def _open_token_cache(
    options: RunOptions, message: Callable[[str], None]
) -> TokenCache | None:
    """The token cache of ``--token-cache``, or None (with a warning) if unusable."""
    # Imported here: a run without the cache does not pay for it.
    from runner.token_cache import TokenCache

    def warn(text: str) -> None:
        message(f"warning: {text}")

    return TokenCache.open(environ=options.env, warn=warn)


class _ReportFile(RunListener, Protocol):
    """``--junit`` or ``--report``: a listener that writes its file when told."""

    problem: str | None  # after `finished`: why the file was not written


def _report_files(
    options: RunOptions,
    redactor: Redactor,
    suites: Sequence[Selected],
    *,
    start: _Start,
) -> list[_ReportFile]:
    """The report files the options ask for, the JUnit file first."""
    # The report files' modules are imported only when asked for: every
    # run pays for what it imports (benchmarks/bench_run.py).
    loaded = [item.suite for item in suites]
    files: list[_ReportFile] = []
    if options.junit is not None:
        from runner.junit import JUnitReport

        files.append(JUnitReport(options.junit, redactor, loaded))
    if options.report is not None:
        from runner.report import JsonReport

        files.append(JsonReport(options.report, redactor, loaded, started=start.at))
    return files


@dataclass(frozen=True, slots=True)
class _Sinks:
    """Where a run's outcomes go, in the order each must see them."""

    reporter: Reporter
    redactor: Redactor
    listeners: Sequence[RunListener]  # the files excluded
    live: LiveCount | None  # the progress line, on a terminal
    files: Sequence[_ReportFile]  # written when the run ends, in this order

    @classmethod
    def build(
        cls,
        options: RunOptions,
        out: TextIO,
        redactor: Redactor,
        stop: RunStop,
        suites: Sequence[Selected],
        *,
        start: _Start,
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
            root = workspace(options.env)
            listeners.append(GitHubAnnotations(reporter.message, redactor, cwd=root))

        files = _report_files(options, redactor, suites, start=start)
        return cls(reporter, redactor, listeners, live, files)

    @property
    def every(self) -> list[RunListener]:
        """Every listener, the files last."""
        return [*self.listeners, *self.files]


# Which request of which suite an outcome belongs to: the suite's place in
# the run, and the request's `LoadedRequest.index`.
_Key = tuple[int, int]


class _Broadcast:
    """Hands each outcome to every listener and counts it, from any thread.

    Until `close`: then it reports every picked send still without an
    outcome as skipped and drops whatever comes later, so that a worker
    still stuck in a send after an interrupt cannot print after the summary
    or reach a report file already written.
    """

    def __init__(self, listeners: Sequence[RunListener], reporter: Reporter) -> None:
        self.totals = RunTotals()
        self._listeners = listeners
        self._reporter = reporter
        # Held while listeners are called, so the check that the broadcast
        # is open and the delivery are one step.
        self._lock = threading.Lock()
        self._open = True
        self._arrived: collections.Counter[_Key] = collections.Counter()

    def outcome(self, key: _Key, outcome: Outcome) -> None:
        """Hand `outcome` of the request `key` to every listener, unless closed."""
        with self._lock:
            if self._open:
                self._deliver(key, outcome)

    def message(self, text: str) -> None:
        """A line through the reporter (a trace, a warning), unless closed."""
        with self._lock:
            if self._open:
                self._reporter.message(text)

    def close(self, *, unfinished: Sequence[Selected] = ()) -> None:
        """Report the sends of `unfinished` that have no outcome as interrupted.

        Each request picked in `unfinished` (the run's suites, in order)
        gets skipped outcomes up to one per repeat; then nothing more is
        delivered.
        """
        with self._lock:
            for number, selected in enumerate(unfinished):
                suite = selected.suite
                for request in suite.requests:
                    if not selected.runs(request):
                        continue
                    key = (number, request.index)
                    left = max(request.model.repeat - self._arrived[key], 0)
                    for skipped in skipped_outcomes(
                        suite, request, INTERRUPTED_REASON, left
                    ):
                        self._deliver(key, skipped)
            self._open = False

    def _deliver(self, key: _Key, outcome: Outcome) -> None:
        # Called with the lock held.
        self._arrived[key] += 1
        self.totals.add(outcome.state)
        for listener in self._listeners:
            listener.outcome(outcome)


class _SuiteRunner:
    """Runs one suite's requests in order; shared by the worker threads."""

    def __init__(
        self,
        sessions: Mapping[str, ConnectionSession],
        templates: Templates,
        broadcast: _Broadcast,
        stop: RunStop,
    ) -> None:
        self.stop = stop
        self._sender = RequestSender(sessions, templates, stop)
        self._broadcast = broadcast

    def suite(self, item: tuple[int, Selected]) -> None:
        """Run the picked requests of a suite, given with its place in the run."""
        number, selected = item
        suite = selected.suite
        progress = SuiteProgress(not_selected="not selected by --tag")
        for request in suite.requests:
            if not selected.runs(request):
                # Not sent and not reported; only its captures are missed.
                progress.left_out(request)
                continue
            report = functools.partial(self._broadcast.outcome, (number, request.index))
            reason = progress.skip_reason(request)
            if reason is None and self.stop.is_set():
                reason = self.stop.reason
            if reason is not None:
                for outcome in skipped_outcomes(suite, request, reason):
                    report(outcome)
                continue
            progress.sending(request)
            self._sender.send(suite, request, progress.captures, report)


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
