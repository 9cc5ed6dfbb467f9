"""The pytest plugin's nodes: a suite file is a collector, each request an item.

`SuiteFile` loads its file exactly as ``runner run`` does (`runner.loading`)
and yields one `RequestItem` per request, in suite order, named by
`item_name`. An invalid file is
a collection error made of the runner's own ``path:line:column: message``
lines: pytest then runs nothing, so nothing is sent.

`RequestItem` sends its request through the session's shared connections
(`runner.exchange.RequestSender`, the code ``runner run`` uses) and turns
the outcomes into pytest's: a failed or unsent request fails with the
runner's reasons and the suite file's line, a request that uses a capture
no earlier request made is skipped with the reason. Everything it reports
goes through the session's `Redactor`.

Known shortcoming: captures flow from item to item in the order pytest runs
them, which is collection order unless a plugin reorders tests
(pytest-randomly, for one); disable such plugins for suite files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runner.errors import InputError, InputErrors
from runner.exchange import SuiteProgress, request_label
from runner.output import Outcome, State
from runner.yamlsource import read_document

if TYPE_CHECKING:
    from runner.loading import LoadedRequest, LoadedSuite
    from runner.pytest_session import PluginSession

__all__ = [
    "RequestFailed",
    "RequestItem",
    "SuiteFile",
    "SuiteFileError",
    "is_suite",
    "item_name",
]

# Tags that become markers look like pytest's own marker names; other tags
# (spaces, colons) would not survive `-m` or the `markers` ini syntax.
_MARKER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
# Marks that change how a test runs: a tag of that name must not skip,
# xfail or parametrize a request, so it is not made a marker.
RESERVED_MARKS = frozenset(
    {
        "filterwarnings",
        "parametrize",
        "runner",
        "skip",
        "skipif",
        "tryfirst",
        "trylast",
        "usefixtures",
        "xdist_group",
        "xfail",
    }
)
# What a skip reason says of a request that this run did not select.
_NOT_SELECTED = "not selected in this pytest run"
# Node ids join their parts with "::"; in an item's name, "::" is shown as
# U+2237 PROPORTION, which reads the same (see `item_name`).
_NODE_ID_SEPARATOR = "::"
_SEPARATOR_LOOKALIKE = "\N{PROPORTION}"


def is_suite(path: Path) -> bool:
    """Whether the file at `path` is a suite file (a mapping with ``requests``).

    A file that cannot be read or parsed counts as one: it matched the
    user's patterns, so its errors are shown rather than the file ignored.
    """
    try:
        document = read_document(path)
    except (InputError, InputErrors):
        return True
    return "requests" in document.data


def tag_markers(tags: Iterable[str]) -> list[str]:
    """The tags that become markers, sorted; see `RESERVED_MARKS`."""
    return sorted(
        {
            tag
            for tag in tags
            if _MARKER_NAME.fullmatch(tag) and tag not in RESERVED_MARKS
        }
    )


def item_name(label: str) -> str:
    """The name of the item of a request labelled `label`: no ``::`` in it.

    A ``::`` in a name (``step::make``, or the URL of ``http://[::1]:8080``)
    would make the node id look deeper than it is: xdist's ``--dist
    loadscope`` groups tests by the id up to its last ``::``, so it would
    send such a request to another worker than its suite's, and a node id
    given on the command line would not find the item. Each ``::`` becomes
    U+2237 PROPORTION, which reads the same.
    """
    return label.replace(_NODE_ID_SEPARATOR, _SEPARATOR_LOOKALIKE)


def unique_names(labels: Sequence[str]) -> list[str]:
    """`labels` with repeated ones made unique: ``read``, ``read[2]``, ..."""
    names: list[str] = []
    taken: set[str] = set()
    for label in labels:
        name, number = label, 1
        while name in taken:
            number += 1
            name = f"{label}[{number}]"
        taken.add(name)
        names.append(name)
    return names


class SuiteFileError(Exception):
    """A suite file is invalid; its errors are already rendered and masked."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))


class RequestFailed(Exception):
    """A request failed or could not be sent; the message is masked."""


class SuiteFile(pytest.File):
    """A runner suite file: one test item per request, in suite order.

    It also carries the suite's progress (its captures so far) from one
    item to the next while they run.
    """

    def __init__(self, *, state: PluginSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.progress = SuiteProgress(not_selected=_NOT_SELECTED)
        self.suite: LoadedSuite | None = None
        self._next_index = 0  # the first request not yet run or passed over

    def collect(self) -> Iterator[RequestItem]:
        # Relative to the current folder when under it, so that errors and
        # failures name the file as `runner run` given that path would.
        shown = os.path.relpath(self.path)
        loaded = self.state.load(self.path if shown.startswith("..") else Path(shown))
        if loaded.suite is None:
            raise SuiteFileError(loaded.errors)

        suite = self.suite = loaded.suite
        labels = [item_name(request_label(request)) for request in suite.requests]
        for request, name in zip(suite.requests, unique_names(labels), strict=True):
            item = RequestItem.from_parent(self, name=name, request=request)
            for marker in tag_markers([*suite.tags, *request.model.tags]):
                _register_marker(self.state, self.config, marker)
                item.add_marker(marker)
            item.add_marker("runner")
            yield item

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, SuiteFileError):
            count = len(excinfo.value.errors)
            lines = [*excinfo.value.errors, f"{count} error{'s' * (count != 1)}"]
            return "\n".join(lines)
        return self.state.redactor.redact(str(super().repr_failure(excinfo)))

    def reach(self, request: LoadedRequest) -> None:
        """`request` is about to run; mark the ones before it that did not run.

        Those were deselected (``-k``, ``-m``, node ids): only their
        captures are missed.
        """
        if self.suite is None:
            return
        for earlier in self.suite.requests[self._next_index : request.index]:
            self.progress.left_out(earlier)
        self._next_index = max(self._next_index, request.index + 1)


class RequestItem(pytest.Item):
    """One request of a suite file, sent (``repeat`` times) and judged."""

    def __init__(self, *, request: LoadedRequest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request

    @property
    def suite_file(self) -> SuiteFile:
        """The suite file this request belongs to."""
        parent = self.parent
        assert isinstance(parent, SuiteFile)
        return parent

    def runtest(self) -> None:
        suite_file = self.suite_file
        suite, state = suite_file.suite, suite_file.state
        assert suite is not None  # set when the file was collected
        progress = suite_file.progress
        request = self.request

        suite_file.reach(request)
        reason = progress.skip_reason(request)
        if reason is not None:
            pytest.skip(state.redactor.redact(reason))
        progress.sending(request)

        outcomes: list[Outcome] = []
        sender = state.sender(request.connection)
        sender.send(suite, request, progress.captures, outcomes.append)
        failed = [o for o in outcomes if o.state in (State.FAILED, State.ERROR)]
        if failed:
            text = _describe(failed, sends=len(outcomes))
            raise RequestFailed(state.redactor.redact(text))
        if outcomes and all(o.state is State.SKIPPED for o in outcomes):
            pytest.skip(state.redactor.redact(outcomes[0].reasons[0]))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, RequestFailed):
            return str(excinfo.value)
        # A bug of the runner's, not of the suite: show pytest's report of
        # it, masked like everything else.
        redactor = self.suite_file.state.redactor
        return redactor.redact(str(super().repr_failure(excinfo, style=style)))

    def reportinfo(self) -> tuple[Path, int, str]:
        location = self.request.location
        suite = self.suite_file.suite
        title = f"{suite.name} > {self.name}" if suite is not None else self.name
        return self.path, max(location.line - 1, 0), title

    @property
    def where(self) -> tuple[str, int]:
        """The request's file (as the runner names it) and 1-based line."""
        location = self.request.location
        return location.file, location.line


def _describe(failed: Sequence[Outcome], *, sends: int) -> str:
    """The failure text: where the request is, what was sent, each reason."""
    lines: list[str] = []
    if sends > 1:
        lines.append(f"{len(failed)} of {sends} sends failed")
    for outcome in failed:
        head = f"{outcome.method} {outcome.url}"
        if outcome.status is not None:
            head += f" -> {outcome.status}"
        if outcome.elapsed_ms is not None:
            head += f" in {outcome.elapsed_ms:.0f} ms"
        if outcome.attempts > 1:
            head += f" after {outcome.attempts} attempts"
        if outcome.state is State.ERROR:
            head += " (could not be sent)"
        where = outcome.location.prefix() if outcome.location is not None else "?"
        lines.append(f"{where}: {outcome.suite} > {outcome.request}: {head}")
        lines += [f"    {reason}" for reason in outcome.reasons]
    return "\n".join(lines)


def _register_marker(state: PluginSession, config: pytest.Config, name: str) -> None:
    """Make `name` a known marker, so ``--strict-markers`` accepts it."""
    if name in state.markers:
        return
    state.markers.add(name)
    registered = {
        line.split(":", 1)[0].split("(", 1)[0].strip()
        for line in config.getini("markers")
    }
    if name not in registered:
        config.addinivalue_line("markers", f"{name}: a runner suite or request tag")
