"""Secrets that would survive masking in part: cut in two, quoted, not parsed.

test_masking.py searches every sink for whole secrets; these cases are the
ways a secret reaches a sink in pieces, each found once by a review:

- a text cut to be shown (the 200-character body excerpt of a failure
  reason, the 2 KiB body of ``-v``) where the cut falls inside a secret;
- a ``--dry-run`` word with a ``'`` in it, which shell quoting splits;
- a token response that is not JSON, whose tokens the redactor never
  learns, shown by ``-vv``.

Each test looks for any eight-character piece of the secret in every byte
written, not only for the whole value.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import main
from runner.expectations import MAX_SHOWN
from runner.trace import BODY_LIMIT
from tests.oauth_servers import FixtureServer, Reply
from tests.scripted_server import ScriptedServer

KEY_ENV = "RUNNER_CUTS_KEY"
SECRET = "cut-SECRET-value-0123456789"
PIECE = 8


def _pieces(secret: str) -> set[str]:
    return {secret[start : start + PIECE] for start in range(len(secret) - PIECE + 1)}


def _assert_no_piece(secret: str, *texts: str) -> None:
    everything = "\n".join(texts)
    found = sorted(piece for piece in _pieces(secret) if piece in everything)
    assert not found, f"pieces of the secret were written: {found}"


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ScriptedServer() as server:
        yield server


def _suite(folder: Path, url: str, requests: str) -> Path:
    connection = f'url: {url}\nheaders: {{X-Key: "{{{{ env.{KEY_ENV} }}}}"}}\n'
    (folder / "connection.yaml").write_text(connection, encoding="utf-8")
    suite = folder / "suite.yaml"
    text = "name: cuts\nconnection: connection.yaml\nrequests:\n"
    suite.write_text(text + textwrap.dedent(requests), encoding="utf-8")
    return suite


@pytest.mark.parametrize("shift", [3, 8, 15])
def test_failure_excerpt_cut_inside_a_secret_shows_no_piece_of_it(
    api: ScriptedServer, tmp_path: Path, shift: int
) -> None:
    """The reason's body excerpt, in the terminal, JUnit and the JSON report."""
    padding = "y" * (MAX_SHOWN - len("body: ") - shift)
    body = (padding + SECRET + " tail").encode()
    api.default("/page", Reply(200, body, {"Content-Type": "text/plain"}))
    suite = _suite(
        tmp_path,
        api.url,
        """\
        - name: page
          url: page
          expect: {json: {a: 1}}
        """,
    )
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"

    status, out, err = _run("--junit", str(junit), "--report", str(report), str(suite))

    assert status == 1
    assert "expected a JSON body" in out
    written = [out, err, junit.read_text("utf-8"), report.read_text("utf-8")]
    _assert_no_piece(SECRET, *written)


@pytest.mark.parametrize("shift", [3, 10, 20])
def test_verbose_body_cut_inside_a_secret_shows_no_piece_of_it(
    api: ScriptedServer, tmp_path: Path, shift: int
) -> None:
    body = ("x" * (BODY_LIMIT - shift) + SECRET + "z" * 100).encode()
    api.default("/big", Reply(200, body, {"Content-Type": "text/plain"}))
    suite = _suite(tmp_path, api.url, "- url: big\n")

    status, out, err = _run("-v", str(suite))

    assert status == 0, out + err
    assert "more characters not shown" in out
    _assert_no_piece(SECRET, out, err)


def test_dry_run_secret_with_quotes_and_spaces_shows_no_piece_of_it(
    api: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shell quoting turns ``'`` into ``'"'"'``, which split the secret."""
    quoted = "ab'cd efgh'ij*kl"
    monkeypatch.setenv(KEY_ENV, quoted)
    suite = _suite(
        tmp_path,
        api.url,
        f"""\
        - url: items
          params: {{key: "{{{{ env.{KEY_ENV} }}}}"}}
          body: {{key: "{{{{ env.{KEY_ENV} }}}}"}}
        """,
    )

    status, out, err = _run("--dry-run", str(suite))

    assert status == 0, out + err
    assert "curl" in out
    for piece in ("ab'cd", "ab'\"'\"'cd", "efgh", "ij*kl"):
        assert piece not in out + err
    assert api.count("/items") == 0


def test_token_response_that_is_not_json_is_not_shown_by_vv(tmp_path: Path) -> None:
    """A form-encoded token answer: its token is unknown to the redactor."""
    token = "gho_FORMTOKEN-0123456789abcdef"
    with FixtureServer() as server:
        form = f"access_token={token}&token_type=bearer&expires_in=3600"
        server.replies.append(
            Reply(
                200,
                form.encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        connection = textwrap.dedent(
            f"""\
            url: {server.api_url}
            token_url: {server.token_url}
            client_id: {server.client_id}
            client_secret: {server.client_secret!r}
            """
        )
        (tmp_path / "connection.yaml").write_text(connection, encoding="utf-8")
        suite = tmp_path / "suite.yaml"
        suite.write_text(
            "connection: connection.yaml\nrequests:\n  - url: items\n", "utf-8"
        )

        status, out, err = _run("-vv", str(suite))

    assert status == 1
    assert "body not shown: not a JSON object" in out
    _assert_no_piece(token, out, err)
    _assert_no_piece(server.client_secret, out, err)


def test_failure_showing_a_json_body_as_text_shows_no_piece_of_an_escaped_secret(
    api: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body holds the secret JSON-escaped; showing it encodes it again."""
    escaped = 'se"cr\\et-\u00e9-1234'
    monkeypatch.setenv("RUNNER_CUTS_PASSWORD", escaped)
    api.default("/echo", Reply.json(200, {"echo": {"pw": escaped}}))
    # Sent in the body: a header cannot carry the non-ASCII letter.
    (tmp_path / "connection.yaml").write_text(f"url: {api.url}\n", "utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            connection: connection.yaml
            requests:
              - method: POST
                url: echo
                body: {pw: "{{ env.RUNNER_CUTS_PASSWORD }}"}
                expect:
                  that: ["response.text == 1"]
            """
        ),
        "utf-8",
    )

    status, out, err = _run(str(suite))

    assert status == 1
    assert "is false (left: " in out
    _assert_no_piece(escaped, out, err)
    for piece in ('se\\\\\\"cr', "\\\\u00e9-1234", "cr\\\\\\\\et"):
        assert piece not in out
