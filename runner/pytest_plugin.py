"""The pytest plugin: runner suite files collected and run as pytest tests.

Registered through the ``pytest11`` entry point, so installing the package
is enough; it uses only pytest's public API. It collects nothing until told
which files are suites, so unrelated YAML is left alone:

- the ini option ``runner_suites``: glob patterns, one a line, matched
  against each file's path relative to the rootdir (``/`` separators; a
  ``*`` matches across folders, so ``*.suite.yaml`` picks such files
  anywhere);
- ``--runner-suites GLOB`` (repeatable): the same, replacing the ini value;
- ``--runner-demo``: start the embedded demo API and collect the suites of
  the checkout's ``examples/`` (in place of ``testpaths`` unless paths are
  given), as ``runner demo`` does.

Of the files that match, only suite files (a mapping with ``requests``)
are collected; see `runner.pytest_items` for the nodes and
`runner.pytest_session` for what one pytest session shares (tokens above
all). ``--runner-var NAME=VALUE`` and ``--runner-env-file FILE`` are those
of ``runner run``.

Under pytest-xdist each suite must stay on one worker, in order:
``--dist loadfile`` (and ``loadscope``) keep a file's tests together, so
``--dist load`` (what ``-n`` means by default) is turned into ``loadfile``.
``loadscope`` groups by the node id up to its last ``::``, which is why no
item name holds one (see `runner.pytest_items.item_name`). ``worksteal``
would split files and is refused; so is ``loadgroup``, since with pytest
9.2 xdist 3.8 no longer applies its ``xdist_group`` marks (it sets a node
attribute that pytest stopped reading) and so splits files as ``load``
does. Each worker has its own `PluginSession`, so its own tokens; it sends
its warnings and token counts to the controller in ``config.workeroutput``
(``pytest_testnodedown``, an xdist hook this plugin implements only as an
optional one), which prints their sum.

This module imports only pytest at start-up: every pytest run of every
project where the package is installed imports it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from runner.pytest_session import PluginSession, Tally

__all__ = [
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_configure",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "pytest_unconfigure",
]

_STATE: pytest.StashKey[PluginSession] = pytest.StashKey()
_SUITES: pytest.StashKey[_Opted] = pytest.StashKey()
_NOTES: pytest.StashKey[list[str]] = pytest.StashKey()
# The tallies the xdist workers sent, on the controller.
_WORKERS: pytest.StashKey[list[Tally]] = pytest.StashKey()
# The key of the plugin's tally in an xdist worker's ``workeroutput``.
_WORKER_OUTPUT = "runner"
# xdist distribution modes that can split one file between workers.
_SPLITTING = frozenset({"loadgroup", "worksteal"})


class _Opted:
    """Which files count as suite files: glob patterns, and the demo's folder."""

    def __init__(self, patterns: Sequence[str], root: Path, folder: Path | None):
        self.patterns = tuple(patterns)
        self.root = root
        self.folder = folder

    def wants(self, path: Path) -> bool:
        if self.folder is not None and path.is_relative_to(self.folder):
            return True
        try:
            shown = path.relative_to(self.root).as_posix()
        except ValueError:
            shown = path.as_posix()
        return any(fnmatch.fnmatchcase(shown, pattern) for pattern in self.patterns)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options and its ini setting."""
    group = parser.getgroup("runner", "runner request suites")
    group.addoption(
        "--runner-suites",
        action="append",
        default=None,
        metavar="GLOB",
        help=(
            "collect runner suite files matching GLOB, relative to the rootdir "
            "(repeatable; replaces the runner_suites ini value)"
        ),
    )
    group.addoption(
        "--runner-var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for the suites' templates, over their vars (repeatable)",
    )
    group.addoption(
        "--runner-env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="NAME=VALUE lines added to what templates see as env (repeatable)",
    )
    group.addoption(
        "--runner-token-cache",
        action="store_true",
        default=None,
        help=(
            "keep OAuth2 tokens on disk between sessions, as runner run "
            "--token-cache does (also the runner_token_cache ini value)"
        ),
    )
    group.addoption(
        "--runner-no-token-cache",
        action="store_false",
        dest="runner_token_cache",
        default=None,
        help="do not keep tokens on disk, whatever the runner_token_cache ini value",
    )
    group.addoption(
        "--runner-demo",
        action="store_true",
        default=False,
        help="start the demo API and run the examples/ suites against it",
    )
    parser.addini(
        "runner_suites",
        type="linelist",
        default=[],
        help="glob patterns of the runner suite files to collect, one a line",
    )
    parser.addini(
        "runner_token_cache",
        type="bool",
        default=False,
        help="keep OAuth2 tokens on disk between sessions (runner run --token-cache)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers; if enabled, make the session's state."""
    config.addinivalue_line("markers", "runner: a request of a runner suite file")
    patterns: Sequence[str] = config.getoption("runner_suites") or config.getini(
        "runner_suites"
    )
    demo: bool = config.getoption("runner_demo")
    if not patterns and not demo:
        return

    from runner.errors import InputError
    from runner.loading import parse_var_options, read_env_files
    from runner.pytest_session import PluginSession

    try:
        env = dict(os.environ)
        env.update(
            read_env_files([Path(p) for p in config.getoption("runner_env_file")])
        )
        variables = parse_var_options(config.getoption("runner_var"))
    except InputError as error:
        raise pytest.UsageError(f"runner: {error}") from None

    notes: list[str] = []
    folder = _demo_folder(config) if demo else None
    _keep_suites_whole(config, notes)
    config.stash[_SUITES] = _Opted(patterns, config.rootpath, folder)
    config.stash[_NOTES] = notes
    token_cache: bool | None = config.getoption("runner_token_cache")
    if token_cache is None:
        token_cache = bool(config.getini("runner_token_cache"))
    config.stash[_STATE] = PluginSession(
        env=env, variables=variables, demo=demo, token_cache=token_cache
    )


def _demo_folder(config: pytest.Config) -> Path:
    """The examples folder, collected in place of testpaths unless paths are given."""
    from runner.demo import find_examples

    examples = find_examples()
    if examples is None:
        message = (
            "runner: --runner-demo needs the examples/ folder of a source "
            "checkout next to the package; an installed copy has none"
        )
        raise pytest.UsageError(message)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(examples)]
    return examples


def _keep_suites_whole(config: pytest.Config, notes: list[str]) -> None:
    """Under xdist, make sure no suite file is split between workers."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # no xdist, or an xdist worker (the controller decided)
    dist = config.getoption("dist", "no")
    if dist in _SPLITTING:
        message = (
            f"runner: --dist {dist} would split suite files between workers; "
            "use --dist loadfile"
        )
        raise pytest.UsageError(message)
    if dist == "load":
        # Only the controller schedules: the workers need not know.
        config.option.dist = "loadfile"
        notes.append("--dist load turned into loadfile: each suite file on one worker")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say what the plugin collects, and any change it made to ``--dist``."""
    opted = config.stash.get(_SUITES, None)
    if opted is None:
        return []
    lines = []
    if opted.patterns:
        lines.append(f"runner: suite files matching {', '.join(opted.patterns)}")
    if opted.folder is not None:
        lines.append(f"runner: demo API for the suites of {opted.folder}")
    lines += [f"runner: {note}" for note in config.stash.get(_NOTES, [])]
    return lines


def pytest_collect_file(
    file_path: Path, parent: pytest.Collector
) -> pytest.Collector | None:
    """A `SuiteFile` for each opted-in suite file; None for anything else."""
    opted = parent.config.stash.get(_SUITES, None)
    if opted is None or not opted.wants(file_path):
        return None

    from runner.loading import SUFFIXES
    from runner.pytest_items import SuiteFile, is_suite

    if file_path.suffix.lower() not in SUFFIXES or not is_suite(file_path):
        return None
    state = parent.config.stash[_STATE]
    return SuiteFile.from_parent(parent, path=file_path, state=state)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Point a skipped request's report at its suite file, not at this plugin."""
    report = yield
    if item.config.stash.get(_STATE, None) is None:
        return report

    from runner.pytest_items import RequestItem

    if isinstance(item, RequestItem) and report.skipped:
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            file, line = item.where
            report.longrepr = (file, line, longrepr[2])
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close every connection (and the demo API); a worker reports its tally."""
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.close()
    # Only an xdist worker has it; xdist sends it once every hook has run.
    workeroutput = getattr(session.config, "workeroutput", None)
    if isinstance(workeroutput, dict):
        workeroutput[_WORKER_OUTPUT] = state.tally().to_wire()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Keep the tally an xdist worker reported, on the controller.

    An xdist hook, declared optional so that the plugin loads without xdist.
    """
    config: pytest.Config = node.config
    if config.stash.get(_STATE, None) is None:
        return
    from runner.pytest_session import Tally

    output = getattr(node, "workeroutput", None)
    data = output.get(_WORKER_OUTPUT) if isinstance(output, dict) else None
    tally = Tally.from_wire(data)
    if tally is not None:
        config.stash.setdefault(_WORKERS, []).append(tally)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The runner's warnings and its tokens, of this process and its workers."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    from runner.pytest_session import Tally

    tally = Tally.total([state.tally(), *config.stash.get(_WORKERS, [])])
    for warning in tally.warnings:
        # Masked here too: a worker's were masked by its own redactor.
        terminalreporter.write_line(
            state.redactor.redact(f"runner: warning: {warning}")
        )
    if tally.connections:
        terminalreporter.write_line(f"runner: {_tokens_line(tally)}")


def _tokens_line(tally: Tally) -> str:
    """Connections and tokens, in the words of ``runner run``'s summary."""
    count = len(tally.connections)
    line = f"{count} connection{'s' * (count != 1)}"
    if tally.workers:
        line += f" on {tally.workers} worker{'s' * (tally.workers != 1)}"
    fetched = tally.tokens_fetched
    line += f", {fetched} token{'s' * (fetched != 1)} fetched"
    if tally.token_requests > fetched:
        line += f" in {tally.token_requests} token requests"
    if tally.tokens_from_cache:
        line += f", {tally.tokens_from_cache} from cache"
    return line


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the session's state if `pytest_sessionfinish` did not (idempotent)."""
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()
