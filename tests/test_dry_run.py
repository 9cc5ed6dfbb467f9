"""``runner run --dry-run``: each request as a pasteable curl command, none sent.

Runs go through `runner.cli.main` with the files pointing at a real
`FixtureServer` on 127.0.0.1, which proves by its counters that nothing
reached it, token requests included. The commands are read back with
`shlex.split`, as a POSIX shell would read them. That no secret shows in
them is checked with the other sinks in test_masking.py.
"""

from __future__ import annotations

import io
import shlex
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import main
from tests.oauth_servers import FixtureServer

SECRET_ENV = "RUNNER_DRY_CLIENT_SECRET"
KEY_ENV = "RUNNER_DRY_KEY"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as fixture:
        monkeypatch.setenv(SECRET_ENV, fixture.client_secret)
        monkeypatch.setenv(KEY_ENV, "dry-key-value")
        yield fixture


def _files(folder: Path, server: FixtureServer, requests: str, **extra: str) -> Path:
    connection = textwrap.dedent(
        f"""\
        url: {server.api_url}
        token_url: {server.token_url}
        client_id: {server.client_id}
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        headers: {{X-Client: runner, X-Key: "{{{{ env.{KEY_ENV} }}}}"}}
        """
    )
    connection += "".join(f"{key}: {value}\n" for key, value in extra.items())
    (folder / "connection.yaml").write_text(connection, encoding="utf-8")
    suite = folder / "suite.yaml"
    text = "name: dry\nconnection: connection.yaml\nvars: {who: acme}\nrequests:\n"
    suite.write_text(text + textwrap.dedent(requests), encoding="utf-8")
    return suite


def _dry_run(*paths: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["run", "--dry-run", "--no-color", *map(str, paths)]
    status = main(args, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _commands(out: str) -> list[list[str]]:
    """Each command of the output as the shell would split it (comments dropped)."""
    return [
        shlex.split(chunk, comments=True)
        for chunk in out.split("\n\n")
        if "curl" in chunk
    ]


def _options(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == flag]


def test_dry_run_prints_a_pasteable_curl_and_sends_nothing(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _files(
        tmp_path,
        server,
        """\
        - name: create
          method: POST
          url: invoices
          headers: {X-Request: "for {{ who }}"}
          params: {tag: [a b, c], page: 2}
          body: {customer: "{{ who }}", note: "it's @here"}
          timeout: 5
        """,
    )

    status, out, err = _dry_run(suite)

    assert status == 0, err
    assert server.token_requests == 0 and server.api_requests == 0
    [argv] = _commands(out)
    assert argv[:2] == ["curl", f"{server.api_url}/invoices?tag=a+b&tag=c&page=2"]
    assert _options(argv, "-H") == [
        "X-Client: runner",
        "X-Key: ***",
        "X-Request: for acme",
        "Authorization: Bearer ***",
        "Content-Type: application/json",
    ]
    assert _options(argv, "--data-raw") == ['{"customer":"acme","note":"it\'s @here"}']
    assert _options(argv, "--max-time") == ["5"]
    assert "-X" not in argv and "-k" not in argv and "-L" not in argv
    assert out.startswith(f"# dry > create  ({suite}:5:3)\n")
    assert out.endswith("# 1 request in 1 suite; nothing was sent\n")


def test_dry_run_leaves_captured_values_as_template_text_and_says_so(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _files(
        tmp_path,
        server,
        """\
        - name: create
          method: POST
          url: invoices
          body: {customer: "{{ who }}"}
          capture: {invoice_id: response.json.id}
        - name: pay
          method: PATCH
          url: "invoices/{{ invoice_id }}"
          body: {id: "{{ invoice_id }}", by: "{{ who }}"}
        """,
    )

    status, out, _ = _dry_run(suite)

    assert status == 0
    second = out.split("\n\n")[1]
    assert "# uses invoice_id, captured at run time: left as template text" in second
    [_, argv] = _commands(out)
    assert argv[:4] == ["curl", "-X", "PATCH", "-g"]
    assert argv[4] == f"{server.api_url}/invoices/{{{{ invoice_id }}}}"
    assert _options(argv, "--data-raw") == ['{"id":"{{ invoice_id }}","by":"acme"}']
    assert server.token_requests == 0 and server.api_requests == 0


def test_dry_run_adds_k_and_l_and_keeps_the_token_off_other_origins(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _files(
        tmp_path,
        server,
        """\
        - name: elsewhere
          url: http://127.0.0.1:9/other
          follow_redirects: true
        - name: own auth
          url: items
          headers: {Authorization: "Basic {{ env.RUNNER_DRY_KEY }}"}
        """,
        verify_ssl="false",
    )

    status, out, _ = _dry_run(suite)

    assert status == 0
    first, second = _commands(out)
    assert first[1] == "http://127.0.0.1:9/other"
    assert "-L" in first and "-k" in first
    assert not any(h.startswith("Authorization") for h in _options(first, "-H"))
    assert "Authorization: ***" in _options(second, "-H")
    assert server.token_requests == 0 and server.api_requests == 0


def test_dry_run_of_invalid_input_exits_2_and_prints_no_command(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _files(tmp_path, server, "- url: '{{ undefined_name }}'\n")

    status, out, err = _dry_run(suite)

    assert status == 2
    assert "undefined_name" in err
    assert "curl" not in out
    assert server.token_requests == 0 and server.api_requests == 0


def test_dry_run_prints_only_the_requests_picked_by_tag(
    server: FixtureServer, tmp_path: Path
) -> None:
    suite = _files(
        tmp_path,
        server,
        """\
        - name: picked
          url: picked
          tags: [smoke]
        - name: left out
          url: left-out
        """,
    )
    out, err = io.StringIO(), io.StringIO()
    args = ["run", "--dry-run", "--tag", "smoke", "--no-color", str(suite)]
    status = main(args, stdout=out, stderr=err)

    assert status == 0, err.getvalue()
    commands = _commands(out.getvalue())
    assert len(commands) == 1
    assert f"{server.api_url}/picked" in commands[0]
    assert "left out" not in out.getvalue()
    assert server.token_requests == server.api_requests == 0
    assert server.client_secret not in out.getvalue() + err.getvalue()
