"""The live ``N done, M pending`` line: on a terminal only, never mixed with lines.

`LiveCount` is driven here with a fake terminal and an injected clock, so
nothing waits on real time; one whole run on a fake terminal and one on a
plain stream check the wiring in `runner.running`.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from runner.cli import main
from runner.output import Outcome, State
from runner.progress import LiveCount, use_progress
from tests.oauth_servers import FixtureServer

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _screen(text: str) -> list[str]:
    """What a terminal shows after `text`: ``\\r`` goes back, characters overwrite."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for char in text:
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    lines.append("".join(line).rstrip())
    return lines


def _outcome() -> Outcome:
    return Outcome("s", "r", "GET", "http://127.0.0.1:9/", State.PASSED)


def test_live_line_stays_hidden_for_the_first_second() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 3, clock=clock)

    live.outcome(_outcome())
    clock.now += 0.9
    live.tick()

    assert terminal.getvalue() == ""


def test_live_line_shows_done_and_pending_once_the_run_passes_a_second() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 40, clock=clock)
    for _ in range(12):
        live.outcome(_outcome())

    clock.now += 1.0
    live.tick()

    assert terminal.getvalue() == "\r12 done, 28 pending"


def test_live_line_is_cleared_before_each_line_and_drawn_again_below_it() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 2, clock=clock)
    clock.now += 5
    live.tick()

    live.outcome(_outcome())
    live.write("PASS  s > r\n")

    written = terminal.getvalue()
    blank = "\r" + " " * len("1 done, 1 pending") + "\r"
    assert written.endswith(blank + "PASS  s > r\n\r1 done, 1 pending")
    assert _screen(written) == ["PASS  s > r", "1 done, 1 pending"]


def test_live_line_is_removed_at_the_end_and_never_drawn_again() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 1, clock=clock)
    clock.now += 5
    live.tick()
    live.outcome(_outcome())

    live.close()
    live.write("1 suite, 1 requests: 1 passed\n")
    live.tick()

    assert _screen(terminal.getvalue()) == ["1 suite, 1 requests: 1 passed", ""]
    assert terminal.getvalue().endswith("\r1 suite, 1 requests: 1 passed\n")


def test_live_line_waits_for_the_end_of_a_partly_written_line() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 1, clock=clock)
    clock.now += 5

    live.write("warning: ")
    live.tick()
    live.write("something\n")

    assert _screen(terminal.getvalue()) == ["warning: something", "0 done, 1 pending"]


def test_live_line_pads_over_a_longer_line_drawn_before() -> None:
    terminal, clock = Terminal(), Clock()
    live = LiveCount(terminal, 10, clock=clock)
    clock.now += 5
    live.tick()  # "0 done, 10 pending"
    for _ in range(9):
        live.outcome(_outcome())

    assert _screen(terminal.getvalue()) == ["9 done, 1 pending"]


def test_progress_is_used_only_on_a_terminal_that_is_not_dumb() -> None:
    assert use_progress(Terminal(), environ={"TERM": "xterm-256color"})
    assert use_progress(Terminal(), environ={})
    assert not use_progress(Terminal(), environ={"TERM": "dumb"})
    assert not use_progress(io.StringIO(), environ={"TERM": "xterm"})


# ------------------------------------------------------------ whole runs


def _suite(tmp_path: Path, server: FixtureServer) -> Path:
    (tmp_path / "suite.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: s
            connection:
              url: {server.api_url}
              token_url: {server.token_url}
              client_id: {server.client_id}
              client_secret: "{{{{ env.{SECRET_ENV} }}}}"
            requests:
              - {{name: first, url: a}}
              - {{name: second, url: b, delay: 1200}}
            """
        ),
        encoding="utf-8",
    )
    return tmp_path / "suite.yaml"


def test_run_on_a_terminal_shows_the_live_line_and_leaves_clean_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second request waits 1.2 s, so the line is due when it ends."""
    monkeypatch.setenv("TERM", "xterm")
    with FixtureServer() as server:
        monkeypatch.setenv(SECRET_ENV, server.client_secret)
        terminal = Terminal()

        status = main(
            ["run", "--no-color", str(_suite(tmp_path, server))],
            stdout=terminal,
            stderr=io.StringIO(),
        )

    written = terminal.getvalue()
    assert status == 0, written
    assert "\r1 done, 1 pending" in written
    screen = _screen(written)
    assert [line[:16] for line in screen] == [
        "PASS  s > first ",
        "PASS  s > second",
        "1 suite, 2 reque",
        "",
    ]
    assert server.client_secret not in written


def test_run_on_a_plain_stream_writes_no_carriage_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FixtureServer() as server:
        monkeypatch.setenv(SECRET_ENV, server.client_secret)
        out = io.StringIO()

        status = main(
            ["run", str(_suite(tmp_path, server))], stdout=out, stderr=io.StringIO()
        )

    assert status == 0, out.getvalue()
    assert "\r" not in out.getvalue()
    assert "pending" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 3
